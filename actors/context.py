"""`Context`: what an actor's hooks get to act on the runtime (one per actor)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from structlog.typing import FilteringBoundLogger

if TYPE_CHECKING:
    from actors.actor import Actor
    from actors.cell import ActorCell
    from actors.ref import ActorRef
    from actors.request import Later, Request

T = TypeVar("T")
M2 = TypeVar("M2")
R2 = TypeVar("R2")


class Context:
    """Handed to every hook of one actor: its name, its own ref, its logger, its children."""

    __slots__ = ("_cell", "_children_view")

    def __init__(self, cell: ActorCell[Any, Any]) -> None:
        self._cell = cell
        self._children_view: Mapping[str, ActorRef[Any, Any]] = MappingProxyType(cell.child_refs)

    @property
    def name(self) -> str:
        """The actor's full name, e.g. ``"system/parent/child"``."""
        return self._cell.name

    @property
    def ref(self) -> ActorRef[Any, Any]:
        """The actor's own ref."""
        return self._cell.ref

    @property
    def log(self) -> FilteringBoundLogger:
        """The ``actors`` structlog logger, bound with ``actor=<full name>``."""
        return self._cell.log

    @property
    def children(self) -> Mapping[str, ActorRef[Any, Any]]:
        """Read-only view of the live children, by short name."""
        return self._children_view

    async def spawn(self, actor: Actor[M2, R2], name: str) -> ActorRef[M2, R2]:
        """Start `actor` as a child of this actor, named ``<self>/<name>``.

        Returns once the child's `started` hook has run. Raises ValueError if a live child
        already has that name, ActorCrashed if the child's `started` raised, and
        ActorStopped once this actor is shutting down its children.
        """
        return await self._cell.spawn_child(actor, name)

    def reply_later(self, request: Request[T]) -> Later[T]:
        """Take the reply slot of ``request`` (the message ``receive`` is handling now):
        the value ``receive`` returns is then ignored, and the asker waits until
        ``Later.reply`` (or the actor's end, which answers ``ActorStopped``)."""
        return self._cell.reply_later(request)
