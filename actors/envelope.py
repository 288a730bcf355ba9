"""Mailbox items: a message and where its reply goes.

An envelope is a plain pair ``(message, reply_to)``, made once per message (a
tuple costs a fortieth of a slotted class's ``__init__``). ``reply_to`` is the
asker's one-shot slot (``actors.wake``), None for a ``tell``, or ``SYSTEM`` for a
report from the runtime (a ``ChildFailed``), which no ``tell``/``ask`` can make:
a user message is never mistaken for one.

What an asker's slot receives: the reply value itself (the common case, with
nothing wrapped around it), a ``Failure`` carrying the runtime error to raise
instead, or ``actors.wake.EXPIRED`` once its deadline passed.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final, TypeAlias

from actors.errors import ActorError
from actors.wake import Slot


class _System:
    """A slot that is always done: nothing is ever answered to a report."""

    __slots__ = ()

    def done(self) -> bool:
        return True

    def set_result(self, value: Any) -> None:
        pass

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("nobody waits on a runtime report")

    def __repr__(self) -> str:
        return "SYSTEM"


SYSTEM: Final[Slot] = _System()
"""``reply_to`` of the runtime's own reports."""

Envelope: TypeAlias = "tuple[Any, Slot | None]"


class Failure:
    """The runtime error an asker raises instead of getting a reply."""

    __slots__ = ("error",)

    def __init__(self, error: ActorError) -> None:
        self.error = error


def fail(envelope: Envelope, error: ActorError) -> None:
    """Make the envelope's asker, if one is still listening, raise ``error``.

    Safe to call more than once and after the asker gave up (its ask timed out or
    was cancelled): the late answer is dropped without error."""
    reply_to = envelope[1]
    if reply_to is not None and not reply_to.done():
        reply_to.set_result(Failure(error))
