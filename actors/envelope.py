"""Mailbox items: a message plus, for an ask, the one-shot stream its reply goes back on."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeAlias

from anyio import BrokenResourceError, ClosedResourceError, WouldBlock
from anyio.streams.memory import MemoryObjectSendStream

from actors.errors import ActorError


@dataclass(frozen=True, slots=True)
class Ok:
    """A successful reply: the value `receive` returned."""

    value: Any


Outcome: TypeAlias = Ok | ActorError
"""What travels back to an asker: the reply, or the runtime error to raise instead."""


@dataclass(frozen=True, slots=True, eq=False)
class Envelope:
    """One mailbox item.

    `system` envelopes come from the runtime (a `ChildFailed`), never from `tell`/`ask`,
    so a user message can never be mistaken for one.
    """

    message: Any
    reply_to: MemoryObjectSendStream[Outcome] | None = None
    system: bool = False

    def resolve(self, outcome: Outcome) -> None:
        """Answer the asker, if there is one still listening, and close the reply stream.

        Safe to call more than once and after the asker gave up (a timed-out ask closed
        both ends of its stream): the late reply is dropped without error.
        """
        if self.reply_to is None:
            return
        with self.reply_to, suppress(ClosedResourceError, BrokenResourceError, WouldBlock):
            self.reply_to.send_nowait(outcome)
