"""The `Actor` base class: the hooks application actors implement."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from actors.context import Context
    from actors.messages import ChildFailed

M = TypeVar("M")
R = TypeVar("R")

MAILBOX_SIZE: int = 16
"""Default bounded mailbox capacity: a full mailbox makes senders wait (back-pressure)."""


class Actor(ABC, Generic[M, R]):
    """Handles messages of type `M` one at a time; `receive`'s return value (`R`) answers `ask`.

    An exception from `receive` or `on_child_failed` fails the actor: it stops, its
    children are stopped and its parent is sent a `ChildFailed`.
    """

    mailbox_size: ClassVar[int] = MAILBOX_SIZE

    async def started(self, ctx: Context) -> None:
        """Runs before the first message, before `spawn()` returns. Raising fails the spawn."""

    @abstractmethod
    async def receive(self, message: M, ctx: Context) -> R:
        """Handle one message; the return value is the reply to `ask` (ignored for `tell`)."""

    async def on_child_failed(self, failure: ChildFailed, ctx: Context) -> None:
        """A child failed (the runtime already logged it). Raising escalates: this actor fails."""

    async def stopping(self, ctx: Context) -> None:
        """Runs once at the end, after the children are gone (also after a failure or a hard
        stop, under a shielded deadline), unless `started` raised."""
