"""Typed request/reply: a request names its reply type, and an ask returns exactly that.

    class Ping(msgspec.Struct, Request[Pong], frozen=True): ...
    pong = await ref.ask(Ping(), timeout=5)      # mypy: Pong

A reply that is a union (``Request[Granted | Refused]``) is matched by the asker with
``match``/``assert_never``; no asker checks for a reply its request cannot have.

An actor that answers later (after more messages of its own, e.g. one step per
message) takes the request's reply slot with ``Context.reply_later(request)`` and
fills it with ``Later.reply``; the runtime answers ``ActorStopped`` (or
``ActorCrashed``) for a slot still open when the actor ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from actors.envelope import Failure

if TYPE_CHECKING:
    from actors.errors import ActorError
    from actors.wake import Slot

R = TypeVar("R")


class Request(Generic[R]):
    """Mixin for a message asked with ``ActorRef.ask``: ``R`` is its reply's type.

    Has no fields and no slots of its own, so it mixes into ``msgspec.Struct``s."""

    __slots__ = ()


class Later(Generic[R]):
    """The reply slot of one request, answered after ``receive`` returned."""

    __slots__ = ("_owner", "_reply")

    def __init__(self, reply: Slot | None, owner: set[Later[object]]) -> None:
        self._reply = reply
        self._owner = owner

    @property
    def open(self) -> bool:
        """True until the reply (or a failure) has been given."""
        return self in self._owner

    def reply(self, value: R) -> None:
        """Answer the asker with ``value`` (once; later calls are ignored)."""
        self._settle(value)

    def fail(self, error: ActorError) -> None:
        """Answer the asker by raising ``error`` in it (once)."""
        self._settle(Failure(error))

    def _settle(self, outcome: object) -> None:
        if self in self._owner:
            self._owner.discard(self)
            if self._reply is not None and not self._reply.done():
                self._reply.set_result(outcome)
