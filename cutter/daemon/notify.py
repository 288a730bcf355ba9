"""The daemon's deliverer: POSTs the outbox's notices to the policy's webhooks and
runs their notification hooks.

A pass (``deliver_once``) fans every notice not yet dispatched out into one delivery
per webhook of the policy in force that wants its event and one per hook of its event
(the hooks directory's, ``hook:directory``, and the policy's, ``hook:policy``:
``cutter.walk.hooks``), enqueues the reminders that are due
(``cutter.core.notices.reminder_for``), then sends every delivery that is due and
records the attempt durably (``cutter.core.outbox.attempted``): delivered on a 2xx (a
hook: on exit 0), else tried again after an exponential backoff, ``failed`` after the
webhook's ``max_attempts`` (a hook's: ``HOOK_MAX_ATTEMPTS``). ``run`` does a pass
when woken (the run recorder published a transition: a save enqueued something) and
when the next retry or reminder is due — no polling. A restarted daemon's first pass
picks up whatever the last one left: undispatched notices, due deliveries with their
attempt counts.

Delivery is at least once: a daemon killed after a POST but before recording it
POSTs it again after the restart, with the same ``X-Cutter-Delivery`` (the notice
id), on which a receiver dedupes (docs/notifications.md); a hook is run again.
Failpoints: ``notify:enqueued`` (a delivery about to be sent: the notice durable,
nothing sent) and ``notify:posted`` (the endpoint answered 2xx or the hook exited 0,
the delivery not yet recorded).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio
import anyio.to_thread
import httpx

from cutter.core.errors import CutterError, HooksDirUnsafe, new_error_id
from cutter.core.hook_events import notice_payload
from cutter.core.hook_names import HookEvent
from cutter.core.notices import Notice, encode_notice, remind_at, reminder_for
from cutter.core.outbox import DueDelivery, attempted
from cutter.core.policy import Policy
from cutter.core.ports import RunStore
from cutter.core.principals import own_principal
from cutter.core.run_pages import RunFilter
from cutter.core.sidecar import Sidecar
from cutter.core.states import AWAITING
from cutter.core.transitions import Transition, Transitions
from cutter.core.webhooks import (
    HEADER_DELIVERY,
    HEADER_EVENT,
    HEADER_SIGNATURE,
    Webhook,
    sign,
)
from cutter.runtime.failpoints import failpoint
from cutter.runtime.logs import Logger, get_logger
from cutter.runtime.secret_files import read_secret_file
from cutter.walk.hooks import ProcessHooks, why
from cutter.walk.policy_book import current, default_policy
from cutter.walk.runner import RunnerConfig

BATCH = 100
USER_AGENT = "iu-cutter-webhooks"
HOOK_MAX_ATTEMPTS = 3  # a notification hook that fails is run again twice, on the backoff
_HOOK = "hook:"  # the endpoint of a hook delivery: "hook:directory" or "hook:policy"


@dataclass
class Deliverer:
    store: RunStore
    policy: Callable[[], Awaitable[Policy]]  # the policy in force, read each pass
    clock: Callable[[], datetime]
    client: httpx.AsyncClient
    hooks: ProcessHooks | None = None  # None: no notification hooks are run
    log: Logger = field(default_factory=lambda: get_logger(component="notify"))
    _wake: anyio.Event = field(default_factory=anyio.Event)

    def wake(self) -> None:
        """Ask for a pass soon (after a save enqueued notices)."""
        self._wake.set()

    def publish(self, transition: Transition) -> None:
        """A transitions sink: every transition follows a save, so a pass may find work."""
        self.wake()

    async def run(self) -> None:
        """Pass, then wait for a wake-up or the next due time; until cancelled."""
        while True:
            self._wake = anyio.Event()  # a wake during the pass makes the next one at once
            try:
                next_at = await self.deliver_once()
            except CutterError as exc:  # a store that cannot be read now: say so, go on
                self.log.warning("notify_pass_failed", code=exc.code, reason=exc.message)
                next_at = None
            except Exception:  # a bug must not take the daemon down: logged, next wake-up
                self.log.exception("notify_pass_failed", code="E_INTERNAL", error_id=new_error_id())
                next_at = None
            delay = math.inf
            if next_at is not None:
                delay = max(0.0, (next_at - self.clock()).total_seconds())
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def deliver_once(self) -> datetime | None:
        """One pass; returns when the next retry or reminder is due, if any is."""
        policy = await self.policy()
        now = self.clock()
        next_reminder = await self._remind(policy, now)
        await self._dispatch(policy, now)
        webhooks = {hook.url: hook for hook in policy.webhooks}
        while batch := await self.store.due(now, BATCH):
            for due in batch:
                # A stop (the drain cancels this task) lets the attempt in flight finish,
                # within its timeout: a POST answered is recorded, not sent again.
                with anyio.CancelScope(shield=True):
                    if due.delivery.endpoint.startswith(_HOOK):
                        await self._run_hook(due)
                    else:
                        await self._attempt(due, webhooks.get(due.delivery.endpoint))
            if len(batch) < BATCH:
                break
        next_due = await self.store.next_due()
        times = [t for t in (next_due, next_reminder) if t is not None]
        return min(times, default=None)

    async def _dispatch(self, policy: Policy, now: datetime) -> None:
        while notices := await self.store.undispatched(BATCH):
            for notice in notices:
                endpoints = [h.url for h in policy.webhooks if h.wants(notice.event)]
                if self.hooks is not None:
                    event, payload = HookEvent(notice.event), notice_payload(notice)
                    endpoints += [_HOOK + s for s in await self.hooks.sources(event, payload)]
                await self.store.dispatch(notice.notice_id, endpoints, now)
            if len(notices) < BATCH:
                break

    async def _run_hook(self, due: DueDelivery) -> None:
        notice, delivery = due.notice, due.delivery
        event, payload = HookEvent(notice.event), notice_payload(notice)
        source = delivery.endpoint.removeprefix(_HOOK)
        try:
            hook = None if self.hooks is None else await self.hooks.hook(event, source, payload)
        except HooksDirUnsafe as exc:  # made safe again before the last attempt, it runs
            await self._record(due, f"{exc.code}: {exc.message}", max_attempts=HOOK_MAX_ATTEMPTS)
            return
        if hook is None or self.hooks is None:
            await self._record(due, "the hook is no longer configured", max_attempts=1)
            return
        failpoint("notify:enqueued")
        result = await self.hooks.run(hook, event, payload)
        if result.passed:
            failpoint("notify:posted")
        error = None if result.passed else f"{result.hook} {why(result)}"
        await self._record(due, error, max_attempts=HOOK_MAX_ATTEMPTS)

    async def _attempt(self, due: DueDelivery, hook: Webhook | None) -> None:
        if hook is None:  # the policy no longer lists the endpoint: nothing to send to
            await self._record(due, "the webhook is no longer in the policy", max_attempts=1)
            return
        failpoint("notify:enqueued")
        error = await self._post(due.notice, hook)
        if error is None:
            failpoint("notify:posted")
        await self._record(due, error, max_attempts=hook.max_attempts)

    async def _record(self, due: DueDelivery, error: str | None, *, max_attempts: int) -> None:
        """Record an attempt at ``due``: delivered when ``error`` is None."""
        notice, delivery = due.notice, due.delivery
        done = attempted(
            delivery, ok=error is None, error=error, now=self.clock(), max_attempts=max_attempts
        )
        await self.store.record_attempt(done)
        fields = {
            "notice_id": notice.notice_id,
            "notice_event": notice.event,
            "run_id": notice.run_id,
            "endpoint": delivery.endpoint,
            "attempts": done.attempts,
            "state": done.state.value,
        }
        if done.last_error is None:
            self.log.info("notice_delivered", **fields)
        else:
            level = "notice_failed" if done.state.value == "failed" else "notice_retry"
            self.log.warning(
                level, error=done.last_error, next_at=done.next_at.isoformat(), **fields
            )

    async def _post(self, notice: Notice, hook: Webhook) -> str | None:
        """POST ``notice`` to ``hook``; None when it answered 2xx, else why not."""
        try:
            secret = await anyio.to_thread.run_sync(read_secret_file, hook.secret_file)
        except CutterError as exc:  # E_SECRET_FILE_UNREADABLE: the code, as the docs say
            return f"{exc.code}: {exc.message}"
        body = encode_notice(notice)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER_EVENT: notice.event,
            HEADER_DELIVERY: notice.notice_id,
            HEADER_SIGNATURE: sign(secret, body),
        }
        try:
            reply = await self.client.post(
                hook.url, content=body, headers=headers, timeout=hook.timeout_seconds
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= reply.status_code < 300:
            return None
        return f"HTTP {reply.status_code}"

    async def _remind(self, policy: Policy, now: datetime) -> datetime | None:
        """Enqueue the reminders due now; return when the next one falls due."""
        if policy.remind_before_seconds is None:
            return None
        before = timedelta(seconds=policy.remind_before_seconds)
        upcoming: list[datetime] = []
        for state in sorted(AWAITING):
            after = ""
            while page := await self.store.page(after, BATCH, RunFilter(state=state)):
                for run in page:
                    if isinstance(run, Sidecar):
                        upcoming += await self._remind_run(policy, run, before, now)
                after = page[-1].run_id
                if len(page) < BATCH:
                    break
        return min(upcoming, default=None)

    async def _remind_run(
        self, policy: Policy, run: Sidecar, before: timedelta, now: datetime
    ) -> list[datetime]:
        gate = run.pending_gate
        if gate is None:
            return []
        ttl = timedelta(seconds=policy.gate_rule(run.doc_id, gate.gate).ttl_seconds)
        reminder = reminder_for(run, ttl, before, now)
        if reminder is not None:
            await self.store.enqueue(reminder)
            return []
        due = remind_at(run, ttl, before)
        return [due] if due is not None and due > now else []


@dataclass(frozen=True)
class TransitionFanout:
    """A transitions sink that passes every transition to each of ``sinks``."""

    sinks: tuple[Transitions, ...]

    def publish(self, transition: Transition) -> None:
        for sink in self.sinks:
            sink.publish(transition)


@asynccontextmanager
async def open_deliverer(config: RunnerConfig) -> AsyncIterator[Deliverer]:
    """A deliverer over ``config``'s run store, policy and hooks directory, with its
    HTTP client (no redirects followed: a 3xx is a failed attempt, never a POST to
    elsewhere)."""
    fallback = default_policy(config.policy, own_principal())

    async def policy() -> Policy:
        return (await current(config.kb, fallback)).policy

    hooks = ProcessHooks(
        kb=config.kb, directory=config.hooks_dir, clock=config.clock, fallback=fallback
    )
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        yield Deliverer(config.run_store, policy, config.clock, client, hooks)
