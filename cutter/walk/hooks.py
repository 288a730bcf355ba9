"""The hooks a run's events run (docs/operations.md, Hooks): the hooks directory's
hook for an event first, then the policy's command for it (``policy/current`` as it
is at the event, so a policy change applies to the next event), each bounded by the
policy's ``hook_timeout_seconds`` and run by ``cutter.runtime.hooks.run_hook``.

Every hook run is recorded, in both modes: a ``hook_ran`` log event and a
``HookRecord`` KB doc (``hooks/<run_id>/<event>/<n>``) with what it printed,
bounded and scrubbed of DSN passwords.

``before`` is the walk's: it raises the stop of the first ``before_*`` hook that does
not pass and runs no later one. A ``before_*`` hook runs at least once: a crash after
it ran (failpoint ``hook:ran``: recorded, its answer not yet acted on) leaves the step
to do again, and the recovery runs the hook again and acts on that answer.

``sources``, ``hook`` and ``run`` are the deliverer's (``cutter.daemon.notify``): the hooks of a
notice's event are endpoints of the outbox, as webhooks are, so a notification hook
runs after its notice is saved, off the walk, and a crash before it ran runs it later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from cutter.core.errors import HooksDirUnsafe, StopHookFailed
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

Hook = tuple[str, list[str]]  # its source ("directory" or "policy"), its argv


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

    async def sources(self, event: HookEvent, payload: Mapping[str, object]) -> list[str]:
        """Where ``event`` has a hook now, in the order they run: "directory", "policy".
        An unsafe hooks directory counts: its hook's delivery then fails, visibly and
        retried, instead of the notice silently getting none."""
        found = []
        try:
            if await self.hook(event, "directory", payload) is not None:
                found.append("directory")
        except HooksDirUnsafe:
            found.append("directory")
        if await self.hook(event, "policy", payload) is not None:
            found.append("policy")
        return found

    async def hook(
        self, event: HookEvent, source: str, payload: Mapping[str, object]
    ) -> Hook | None:
        """``event``'s hook of ``source`` as it is now, if there is one (the directory's
        raises ``HooksDirUnsafe``)."""
        if source == "directory":
            return await self._directory_hook(event, _log(payload))
        argv = (await current(self.kb, self.fallback)).policy.hooks.get(event)
        return ("policy", list(argv)) if argv else None

    async def run(self, hook: Hook, event: HookEvent, payload: Mapping[str, object]) -> HookResult:
        """Run one hook of ``event`` under the policy's timeout and record it."""
        log = _log(payload)
        policy = (await current(self.kb, self.fallback)).policy
        source, argv = hook
        result = await run_hook(
            argv,
            event=event,
            payload=payload,
            time_limit=float(policy.hook_timeout_seconds),
            source=source,
        )
        await self._record(result, payload, log)
        return result

    async def _hooks(self, event: HookEvent, log: Logger) -> tuple[list[Hook], float]:
        policy = (await current(self.kb, self.fallback)).policy
        found: list[Hook] = []
        hook = await self._directory_hook(event, log)
        if hook is not None:
            found.append(hook)
        argv = policy.hooks.get(event)
        if argv:
            found.append(("policy", list(argv)))
        return found, float(policy.hook_timeout_seconds)

    async def _directory_hook(self, event: HookEvent, log: Logger) -> Hook | None:
        if self.directory is None:
            return None
        # A few stat calls, off the loop.
        path = await anyio.to_thread.run_sync(hook_for, self.directory, event, log)
        return None if path is None else ("directory", [str(path)])

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


def why(result: HookResult) -> str:
    """What went wrong with a hook that did not pass, in a few words."""
    if result.failure is not None:
        return result.failure
    if result.timed_out:
        return "timed out and was killed"
    return f"exited {result.exit_code}"
