"""`ActorRef`: the handle through which everybody else talks to an actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

from actors.envelope import Failure
from actors.errors import ActorStopped, AskTimeout
from actors.mailbox import MailboxClosed
from actors.wake import EXPIRED

if TYPE_CHECKING:
    from actors.cell import ActorCell
    from actors.request import Request

M = TypeVar("M")
R = TypeVar("R")
T = TypeVar("T")

DEFAULT_STOP_TIMEOUT = 5.0


class ActorRef(Generic[M, R]):
    """Send messages to, ask, or stop one actor. Cheap to copy around; never blocks on its own."""

    __slots__ = ("_cell", "name")

    def __init__(self, cell: ActorCell[M, R]) -> None:
        self._cell = cell
        self.name: str = cell.name

    def __repr__(self) -> str:
        return f"<ActorRef {self.name!r}{' stopped' if self.stopped else ''}>"

    @property
    def stopped(self) -> bool:
        """True once the actor has finished (stopped orderly, failed or been cancelled)."""
        return self._cell.finished

    async def tell(self, message: M) -> None:
        """Enqueue `message`; waits while the mailbox is full.

        Raises ActorStopped if the actor has stopped, failed, or is stopping.
        """
        await self._cell.enqueue((message, None))

    async def ask(self, message: Request[T], *, timeout: float) -> T:  # noqa: ASYNC109
        """Enqueue the request `message` and wait for its reply (``actors.request``):
        the value `receive` returns for it, or the one given to its ``Later``.

        The timeout covers both the wait for mailbox space and the wait for the reply.
        Raises AskTimeout, ActorCrashed (the actor failed on this very message) or
        ActorStopped (it stopped before answering). A reply arriving after the timeout
        is dropped. With room in the mailbox the message is enqueued at once; the
        wait for the reply is the call's schedule point. No timer is set per ask:
        the system's keeper of deadlines (``actors.deadlines``) holds its deadline.
        """
        cell = self._cell
        reply = cell.new_slot()
        envelope = (message, reply)
        try:
            offered = cell.mailbox.put_nowait(envelope)
        except MailboxClosed:
            raise ActorStopped(self.name) from None
        if not offered:  # the mailbox is full: wait for room, on the clock
            start = anyio.current_time()
            try:
                with anyio.fail_after(timeout):
                    await cell.enqueue(envelope)
            except TimeoutError:
                raise AskTimeout(self.name, timeout) from None
            remaining = max(0.0, timeout - (anyio.current_time() - start))
        else:
            remaining = timeout
        deadlines = cell.deadlines
        deadlines.add(reply, remaining)
        try:
            outcome = await reply
        finally:
            deadlines.drop(reply)
        if isinstance(outcome, Failure):
            raise outcome.error
        if outcome is EXPIRED:
            raise AskTimeout(self.name, timeout)
        return outcome  # type: ignore[no-any-return]  # the request names its reply type

    async def stop(self, *, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:  # noqa: ASYNC109
        """Stop orderly and wait until the actor has finished.

        Messages already in the mailbox are handled first (senders still waiting for
        room get ActorStopped), then children are stopped (last spawned first), then
        `stopping` runs. Past `timeout` the actor is cancelled (hard stop). Idempotent.
        Called from the actor's own task, it only requests the stop and returns.
        """
        await self._cell.stop(timeout)
