"""What an actor needs from its supervisor, and the rules for naming children."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from actors.messages import ChildFailed

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from actors.deadlines import Deadlines


class Parent(Protocol):
    """Whoever supervises an actor: another actor's cell, or the ActorSystem."""

    name: str
    deadlines: Deadlines  # the system's, shared by every actor under it
    events: FilteringBoundLogger
    """The system's ``actors`` logger for lifecycle events, bound once: binding a
    logger per actor cost more than the rest of its start."""

    def _report_failure_nowait(self, failure: ChildFailed) -> bool:
        """Take a child's failure report now; False if it must wait for mailbox room."""
        ...

    async def _report_failure(self, failure: ChildFailed) -> None:
        """Take a child's failure report, waiting for mailbox room if need be."""
        ...


def check_child_name(parent: Parent, live_children: Mapping[str, Any], name: str) -> None:
    """Raise ValueError unless `name` is a valid, unused child name under `parent`."""
    if not name or "/" in name:
        raise ValueError(f"actor name must be non-empty and contain no '/': {name!r}")
    if name in live_children:
        raise ValueError(f"{parent.name!r} already has a live child named {name!r}")
