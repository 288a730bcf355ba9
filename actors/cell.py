"""The runtime behind one actor: its mailbox, its message loop and its life cycle.

Life of an actor (all of it inside one task, in the system's task group: every
actor of a system is a task of that one group, and the tree is kept by the cells,
not by nested task groups, since a task group per actor cost a sixth of its start):

1. ``started`` runs, then the spawner is released (``TaskGroup.start`` handshake).
2. The loop handles one envelope at a time until the mailbox (``actors.mailbox``) is
   closed and drained (orderly stop), or a hook raises (failure).
3. The mailbox is closed; asks still queued get ActorStopped; children are stopped, last
   spawned first; ``stopping`` runs.
4. ``actor_stopped`` is logged and, after a failure, the parent is told (``ChildFailed``).

A hard stop cancels the actor's cancel scope: the step it was in is abandoned, its
children are cancelled in turn (and awaited), and ``stopping`` still runs under a
shielded deadline once they are gone.
"""

from __future__ import annotations

import math
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus
from structlog.typing import FilteringBoundLogger

from actors.context import Context
from actors.envelope import SYSTEM, Envelope, fail
from actors.errors import ActorCrashed, ActorError, ActorStopped
from actors.mailbox import Mailbox, MailboxClosed
from actors.messages import ChildFailed, describe_failure, new_error_id
from actors.parent import Parent, check_child_name
from actors.ref import DEFAULT_STOP_TIMEOUT, ActorRef
from actors.request import Later
from actors.wake import Slot

if TYPE_CHECKING:
    from actors.actor import Actor

M = TypeVar("M")
R = TypeVar("R")

CLEANUP_TIMEOUT = 5.0
"""Shielded deadline for the cleanup that still awaits after a cancellation."""

_logger = structlog.get_logger("actors")
_FINISHED = True  # what a stop waiter's slot gets when the actor has ended


async def start_actor(
    task_group: TaskGroup,
    parent: Parent,
    registry: dict[str, ActorRef[Any, Any]],
    actor: Actor[M, R],
    name: str,
) -> ActorRef[M, R]:
    """Start `actor` in `task_group` under `parent`; return once its `started` hook ran."""
    check_child_name(parent, registry, name)
    cell = ActorCell(actor, name, parent, registry, task_group)
    registry[name] = cell.ref
    try:
        await task_group.start(cell.run, name=f"actor {cell.name}")
    except BaseException:
        cell.discard()
        raise
    return cell.ref


class ActorCell(Generic[M, R]):
    """Runtime state of one actor. Internal: applications use ActorRef and Context."""

    def __init__(
        self,
        actor: Actor[M, R],
        short_name: str,
        parent: Parent,
        registry: dict[str, ActorRef[Any, Any]],
        host: TaskGroup,
    ) -> None:
        self.actor = actor
        self._host = host  # the system's task group: children are started in it too
        self.short_name = short_name
        self.name = f"{parent.name}/{short_name}"
        self.parent = parent
        self._log: FilteringBoundLogger | None = None
        self.child_refs: dict[str, ActorRef[Any, Any]] = {}
        self.ref: ActorRef[M, R] = ActorRef(self)
        self.ctx = Context(self)
        self._registry = registry
        self._scope = anyio.CancelScope()
        self._done = False
        self._stop_waiters: list[Slot] = []
        self._accepting_children = False
        self._task: object = None
        self._current: Envelope | None = None
        self._deferred = False  # the current request's reply was taken by `reply_later`
        self._later: set[Later[object]] = set()
        self._started = False
        self._stopping_ran = False
        self.deadlines = parent.deadlines
        self.events = parent.events
        self.new_slot = self.deadlines.new_slot
        self.mailbox: Mailbox[Envelope] = Mailbox(actor.mailbox_size, self.new_slot)

    @property
    def log(self) -> FilteringBoundLogger:
        """The ``actors`` logger bound with this actor's name, made on first use."""
        if self._log is None:
            self._log = _logger.bind(actor=self.name)
        return self._log

    @property
    def finished(self) -> bool:
        return self._done

    # -- used by ActorRef ------------------------------------------------------------

    async def enqueue(self, envelope: Envelope) -> None:
        try:
            await self.mailbox.put(envelope)
        except MailboxClosed:
            raise ActorStopped(self.name) from None

    async def stop(self, grace: float) -> None:
        if self._done:
            return
        self.mailbox.close()  # no new messages; the loop ends once the mailbox is drained
        if self.deadlines.backend.current_task() is self._task:
            return  # stopping itself: it cannot wait for its own end
        if await self._finished_within(grace):
            return
        await self.cancel()

    async def _finished_within(self, seconds: float) -> bool:
        """Wait for the actor's end, up to ``seconds``; True once it has ended.

        A one-shot slot per waiter (``actors.wake``) whose deadline the system keeps
        (``actors.deadlines``) rather than an event under a cancel scope: a segment
        of a cutter walk stops a dozen actors."""
        if self._done:
            return True
        waiter = self.new_slot()
        self._stop_waiters.append(waiter)
        if seconds == math.inf:
            return await waiter is _FINISHED
        self.deadlines.add(waiter, seconds)
        try:
            return await waiter is _FINISHED
        finally:
            self.deadlines.drop(waiter)

    # -- used by Context ---------------------------------------------------------------

    def reply_later(self, message: object) -> Later[Any]:
        current = self._current
        if current is None or current[0] is not message:
            raise RuntimeError("reply_later() takes the request `receive` is handling now")
        if self._deferred:
            raise RuntimeError("reply_later() was already called for this request")
        self._deferred = True
        reply_to = current[1]
        assert reply_to is not SYSTEM  # a system report is never handed to `receive`
        later: Later[Any] = Later(reply_to, self._later)
        self._later.add(later)
        return later

    def _settle_later(self, error: ActorError) -> None:
        for later in list(self._later):
            later.fail(error)

    async def spawn_child(self, actor: Actor[Any, Any], name: str) -> ActorRef[Any, Any]:
        if not self._accepting_children:
            raise ActorStopped(self.name)
        return await start_actor(self._host, self, self.child_refs, actor, name)

    # -- Parent protocol ---------------------------------------------------------------

    # Reports travel through the mailbox, in order with other messages. If this actor is
    # itself stopping, its mailbox is closed and the report is dropped (already logged).

    def _report_failure_nowait(self, failure: ChildFailed) -> bool:
        try:
            return self.mailbox.put_nowait((failure, SYSTEM))
        except MailboxClosed:
            return True

    async def _report_failure(self, failure: ChildFailed) -> None:
        with suppress(MailboxClosed):
            await self.mailbox.put((failure, SYSTEM))

    # -- the actor's task --------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[ActorRef[M, R]]) -> None:
        self._task = self.deadlines.backend.current_task()
        failure: ChildFailed | None = None
        spawn_error: ActorCrashed | None = None
        reason = "cancelled"
        try:
            with self._scope:
                self._accepting_children = True
                try:
                    await self.actor.started(self.ctx)
                except Exception as exc:
                    failure = self._fail(exc)
                    spawn_error = ActorCrashed(self.name, failure.error_id, failure.error_type)
                else:
                    self._started = True
                    self.events.debug("actor_started", actor=self.name)
                    task_status.started(self.ref)
                    failure = await self._serve()
                self.mailbox.close()
                self._reject_queued()
                self._accepting_children = False  # no new children from here on
                await self._stop_children()
                stopping_failure = await self._run_stopping()
                if failure is None:
                    failure = stopping_failure
                reason = "failed" if failure is not None else "stopped"
        finally:
            self._accepting_children = False
            if self.child_refs or not self._stopping_ran:
                # Cancelled (a hard stop, the system's end): the children go first.
                with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                    await self._cancel_children()
                    late_failure = await self._run_stopping()
                    if failure is None:
                        failure = late_failure
            undelivered = self._finish(reason, failure if spawn_error is None else None)
        if spawn_error is not None:
            raise spawn_error  # reaches the spawner through TaskGroup.start
        if not self._started:
            raise ActorStopped(self.name)  # hard-stopped during `started`
        if undelivered is not None:
            await self.parent._report_failure(undelivered)  # parent's mailbox was full

    async def _serve(self) -> ChildFailed | None:
        """Handle envelopes one at a time; return the failure that ended the loop, if any."""
        mailbox = self.mailbox
        while True:
            # A buffered envelope is taken without a schedule point; the wait for the
            # next one is the loop's schedule point.
            envelope = mailbox.take()
            if envelope is None:
                if mailbox.closed:
                    return None  # closed and drained
                await mailbox.receiver()  # woken by the next item or by close
                continue
            # Stays set if a cancellation interrupts the handler, so `_finish` can still
            # answer the asker (ActorStopped) instead of leaving it to its timeout.
            self._current = envelope
            self._deferred = False
            message, reply = envelope
            try:
                if reply is SYSTEM:
                    await self.actor.on_child_failed(message, self.ctx)
                    self._current = None
                    continue
                value = await self.actor.receive(message, self.ctx)
            except Exception as exc:
                self._current = None
                failure = self._fail(exc)
                crashed = ActorCrashed(self.name, failure.error_id, failure.error_type)
                fail(envelope, crashed)
                self._settle_later(crashed)
                return failure
            self._current = None
            if reply is not None and not self._deferred and not reply.done():
                reply.set_result(value)

    def _fail(self, exc: Exception) -> ChildFailed:
        """Record a failure: log it with its traceback and stop taking messages at once."""
        self.mailbox.close()
        error_id = new_error_id()
        self.log.error(
            "actor_failed", error_id=error_id, error_type=type(exc).__name__, exc_info=exc
        )
        return describe_failure(self.name, exc, error_id)

    def _reject_queued(self) -> None:
        """Answer every ask still in the mailbox with ActorStopped; drop the rest."""
        for envelope in self.mailbox.drain():
            fail(envelope, ActorStopped(self.name))

    async def _stop_children(self) -> None:
        for child in reversed(list(self.child_refs.values())):
            await child.stop(timeout=DEFAULT_STOP_TIMEOUT)

    async def _cancel_children(self) -> None:
        """Hard-stop every child, last spawned first, and wait for each to end."""
        for child in reversed(list(self.child_refs.values())):
            await child._cell.cancel()

    async def cancel(self) -> None:
        """Hard stop: cancel the actor's step (its children follow) and wait for its end."""
        if self._done:
            return
        self.mailbox.close()
        self._scope.cancel()
        await self._finished_within(math.inf)

    async def _run_stopping(self) -> ChildFailed | None:
        if not self._started or self._stopping_ran:
            return None
        self._stopping_ran = True
        try:
            await self.actor.stopping(self.ctx)
        except Exception as exc:
            return self._fail(exc)
        return None

    def _finish(self, reason: str, failure: ChildFailed | None) -> ChildFailed | None:
        """Synchronous last step: close everything, release waiters, unregister, report.

        The failure report is handed over before the actor counts as stopped whenever
        the parent can take it at once, so `stopped` implies `system.failures` is up to
        date; returns the report if it still has to wait for room in the parent's mailbox.
        """
        self.mailbox.close()
        if self._current is not None:
            fail(self._current, ActorStopped(self.name))
            self._current = None
        self._settle_later(ActorStopped(self.name))
        self._reject_queued()
        if self._registry.get(self.short_name) is self.ref:
            del self._registry[self.short_name]
        if failure is not None and self.parent._report_failure_nowait(failure):
            failure = None
        self._done = True
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(_FINISHED)
        self.events.debug("actor_stopped", actor=self.name, reason=reason)
        return failure

    def discard(self) -> None:
        """Clean up after a spawn that failed (idempotent; `run` may never have started)."""
        self.mailbox.close()
        self._reject_queued()
        if self._registry.get(self.short_name) is self.ref:
            del self._registry[self.short_name]
