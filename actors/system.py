"""`ActorSystem`: the root supervisor, an async context manager owning a task group."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio
import structlog
from anyio.abc import TaskGroup
from structlog.typing import FilteringBoundLogger

from actors.actor import Actor
from actors.cell import start_actor
from actors.deadlines import Deadlines
from actors.errors import ActorStopped
from actors.messages import ChildFailed
from actors.ref import DEFAULT_STOP_TIMEOUT, ActorRef

M = TypeVar("M")
R = TypeVar("R")


class ActorSystem:
    """Runs root actors in its task group.

    On exit every live root actor is stopped orderly, last spawned first, under one
    shielded deadline of `stop_timeout` seconds; whatever is still running after that is
    cancelled. Exiting therefore never hangs, even on a stuck `receive`.
    """

    def __init__(self, name: str = "system", *, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        self.name = name
        self.stop_timeout = stop_timeout
        self._roots: dict[str, ActorRef[Any, Any]] = {}
        self._failures: list[ChildFailed] = []
        self._task_group: TaskGroup | None = None
        self._closing = False
        self.deadlines: Deadlines

    @property
    def failures(self) -> Sequence[ChildFailed]:
        """Failures of root actors (they have no parent mailbox), oldest first; a copy."""
        return list(self._failures)

    async def spawn(self, actor: Actor[M, R], name: str) -> ActorRef[M, R]:
        """Start a root actor named ``<system>/<name>``; return once its `started` ran.

        Raises ValueError for a duplicate live name, ActorCrashed if `started` raised,
        ActorStopped once the system is exiting, RuntimeError before it is entered.
        """
        if self._task_group is None:
            if self._closing:
                raise ActorStopped(self.name)
            raise RuntimeError("ActorSystem.spawn() needs 'async with ActorSystem()' first")
        if self._closing:
            raise ActorStopped(self.name)
        return await start_actor(self._task_group, self, self._roots, actor, name)

    def _report_failure_nowait(self, failure: ChildFailed) -> bool:
        self._failures.append(failure)
        return True

    async def _report_failure(self, failure: ChildFailed) -> None:
        self._failures.append(failure)

    async def __aenter__(self) -> ActorSystem:
        if self._task_group is not None or self._closing:
            raise RuntimeError("an ActorSystem can be entered only once")
        self.deadlines = Deadlines()
        # Bound once per system, with the logging configuration of its start.
        self.events: FilteringBoundLogger = structlog.get_logger("actors").bind()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        task_group.start_soon(self.deadlines.keep, name=f"{self.name} deadlines")
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group = self._task_group
        if task_group is None:
            return None
        self._closing = True
        try:
            with anyio.move_on_after(self.stop_timeout, shield=True):
                for root in reversed(list(self._roots.values())):
                    await root.stop(timeout=self.stop_timeout)
        finally:
            task_group.cancel_scope.cancel()
            self._task_group = None
            if isinstance(exc, Exception):
                # The body's own error: close the group without it, so it leaves the
                # `async with` as itself rather than wrapped in an ExceptionGroup.
                await task_group.__aexit__(None, None, None)
                suppress = None
            else:
                suppress = await task_group.__aexit__(exc_type, exc, tb)
        return suppress
