"""Mailbox items: a message plus, for an ask, the one-shot slot its reply goes into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from actors.errors import ActorError

if TYPE_CHECKING:
    from actors.reply import Reply


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
    reply_to: Reply | None = None
    system: bool = False

    def resolve(self, outcome: Outcome) -> None:
        """Answer the asker, if there is one still listening.

        Safe to call more than once and after the asker gave up (its ask timed out
        or was cancelled): the late reply is dropped without error.
        """
        if self.reply_to is not None:
            self.reply_to.resolve(outcome)
