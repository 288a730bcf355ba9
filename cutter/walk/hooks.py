"""The ``Hooks`` a runner runs (docs/operations.md, Hooks): the hooks directory's
hook for an event first, then the policy's command for it (``policy/current`` as it
is at the event, so a policy change applies to the next event), each bounded by the
policy's ``hook_timeout_seconds`` and run by ``cutter.runtime.hooks.run_hook``.

Every hook run is recorded, in both modes: a ``hook_ran`` log event and a
``HookRecord`` KB doc (``hooks/<run_id>/<event>/<n>``) with what it printed,
bounded and scrubbed of DSN passwords. ``before`` raises the stop of the first hook
that does not pass and runs no later one; ``notify`` runs them all and raises
nothing — a notification that fails, hangs or cannot be run is logged
(``hook_notification_failed``) and the run goes on.

A ``before_*`` hook runs at least once: a crash after it ran (failpoint
``hook:ran``: recorded, its answer not yet acted on) leaves the step to do again,
and the recovery runs the hook again and acts on that answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from cutter.core.errors import CutterError, HooksDirUnsafe, StopHookFailed
from cutter.core.hook_events import HookResult, stop_for
from cutter.core.hook_names import HookEvent
from cutter.core.kbdocs import HookRecord, hook_record_id, hook_records_prefix
from cutter.core.mode import Mode
from cutter.core.policy import Policy
from cutter.core.ports import KnowledgeBase
from cutter.core.secrets import scrub
from cutter.runtime.failpoints import failpoint
from cutter.runtime.hook_dir import hook_for
from cutter.runtime.hooks import run_hook
from cutter.runtime.logs import Logger, get_logger
from cutter.walk.phases.context import Clock
from cutter.walk.policy_book import current

_Hook = tuple[str, list[str]]  # its source ("directory" or "policy"), its argv


@dataclass(frozen=True, slots=True)
class ProcessHooks:
    kb: KnowledgeBase
    directory: Path | None  # None: no hooks directory
    clock: Clock
    fallback: Policy  # in force while no policy is stored

    async def before(self, event: HookEvent, payload: Mapping[str, object]) -> None:
        log = _log(payload)
        try:
            hooks, timeout = await self._hooks(event, log)
        except HooksDirUnsafe as exc:
            raise StopHookFailed(f"{event} hooks not run: {exc.message}") from None
        for source, argv in hooks:
            result = await run_hook(
                argv, event=event, payload=payload, time_limit=timeout, source=source
            )
            await self._record(result, payload, log)
            failpoint("hook:ran")  # a crash here runs the hook again on recovery
            stop = stop_for(result, timeout)
            if stop is not None:
                raise stop

    async def notify(self, event: HookEvent, payload: Mapping[str, object]) -> None:
        log = _log(payload)
        try:
            hooks, timeout = await self._hooks(event, log)
            for source, argv in hooks:
                result = await run_hook(
                    argv, event=event, payload=payload, time_limit=timeout, source=source
                )
                await self._record(result, payload, log)
                if not result.passed:
                    log.warning(
                        "hook_notification_failed",
                        hook_event=event.value,
                        hook=result.hook,
                        reason=_why(result),
                    )
        except CutterError as exc:  # an unsafe directory, an unreadable policy, a KB write
            log.error(
                "hook_notification_failed",
                hook_event=event.value,
                code=exc.code,
                reason=exc.message,
            )

    async def _hooks(self, event: HookEvent, log: Logger) -> tuple[list[_Hook], float]:
        policy = (await current(self.kb, self.fallback)).policy
        found: list[_Hook] = []
        path = None
        if self.directory is not None:  # a few stat calls, off the loop
            path = await anyio.to_thread.run_sync(hook_for, self.directory, event, log)
        if path is not None:
            found.append(("directory", [str(path)]))
        argv = policy.hooks.get(event)
        if argv:
            found.append(("policy", list(argv)))
        return found, float(policy.hook_timeout_seconds)

    async def _record(self, result: HookResult, payload: Mapping[str, object], log: Logger) -> None:
        log.info(
            "hook_ran",
            hook_event=result.event.value,
            hook=result.hook,
            source=result.source,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            failure=result.failure,
            duration_ms=result.duration_ms,
        )
        run_id = str(payload["run_id"])
        taken = await self.kb.list(hook_records_prefix(run_id, result.event))
        await self.kb.put(
            hook_record_id(run_id, result.event, len(taken) + 1),
            HookRecord(
                run_id=run_id,
                doc_id=str(payload["doc_id"]),
                mode=Mode(str(payload["mode"])),
                event=result.event,
                hook=result.hook,
                source=result.source,
                exit_code=result.exit_code,
                timed_out=result.timed_out,
                failure=result.failure,
                stdout=scrub(result.stdout),
                stderr=scrub(result.stderr),
                duration_ms=result.duration_ms,
                at=self.clock(),
            ),
        )


def _log(payload: Mapping[str, object]) -> Logger:
    return get_logger(component="hooks", run_id=payload.get("run_id"), doc_id=payload.get("doc_id"))


def _why(result: HookResult) -> str:
    if result.failure is not None:
        return result.failure
    if result.timed_out:
        return "timed out and was killed"
    return f"exited {result.exit_code}"
