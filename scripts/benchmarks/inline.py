"""The actor runtime bypassed: the same actors, their hooks called directly.

The in-memory walk's floor (``benchmarks.walk``) runs the very walk the runner
runs, with ``actors.ActorSystem`` swapped for ``InlineSystem`` in ``cutter.walk.runner``:
``spawn`` awaits the actor's ``started`` and hands back a ref, ``ask`` awaits its
``receive`` in the asker's own task, ``tell`` queues the message and handles it
once the actor is idle (at once if it is), ``stop`` stops the children and awaits
``stopping``, ``reply_later`` returns a slot the ask's drain loop waits for. No
task, mailbox, slot, deadline or cancel scope: what is left is the application's
own work — the phase bodies, the gatekeeper's checks, the supervisor's and the
recorder's bookkeeping, the store calls, the logging — on the same in-memory
stores. It counts the messages, so the floor can add one honest request/reply
(``benchmarks.honest``) per ask.

Only the public actor API is provided (what ``actors.Context`` and
``actors.ActorRef`` offer); failures are not supervised (a benchmark walk has
none: an exception propagates and the figure fails loudly). Swapping the name in
``cutter.walk.runner`` is the one coupling to the runner's internals, and ``bypassed``
fails loudly if the runner stops using it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

import structlog


@dataclass
class Counts:
    """Messages sent and actors started through the inline runtime."""

    asks: int = 0
    tells: int = 0
    spawns: int = 0


class InlineLater:
    """``actors.Later`` without a slot: the drain loop of the ask reads it."""

    __slots__ = ("_value", "open")

    def __init__(self) -> None:
        self.open = True
        self._value: Any = None

    def reply(self, value: Any) -> None:
        if self.open:
            self.open, self._value = False, value

    def fail(self, error: BaseException) -> None:
        if self.open:
            self.open, self._value = False, _Raised(error)


@dataclass(frozen=True)
class _Raised:
    error: BaseException


class InlineCell:
    def __init__(
        self, actor: Any, name: str, counts: Counts, parent: InlineCell | None = None
    ) -> None:
        self.actor = actor
        self.name = name
        self.short_name = name.rsplit("/", 1)[-1]
        self.parent = parent
        self.counts = counts
        self.queue: deque[Any] = deque()
        self.busy = False
        self.stopped = False
        self.children: dict[str, InlineRef] = {}
        self.current: Any = None
        self.later: InlineLater | None = None
        self.ref = InlineRef(self)
        self.ctx = InlineContext(self)

    async def handle(self, message: Any) -> Any:
        """``receive`` one message; what an ask answers (an InlineLater if deferred)."""
        outer = self.busy, self.current, self.later
        self.busy, self.current, self.later = True, message, None
        try:
            value = await self.actor.receive(message, self.ctx)
            return value if self.later is None else self.later
        finally:
            self.busy, self.current, self.later = outer

    async def drain(self) -> None:
        """Handle the queued messages, unless the actor is busy (up the stack: the
        loop that called it drains them once it returns)."""
        while self.queue and not self.busy:
            await self.handle(self.queue.popleft())

    async def spawn(self, actor: Any, name: str) -> InlineRef:
        if name in self.children:
            raise ValueError(f"{self.name!r} already has a live child named {name!r}")
        cell = InlineCell(actor, f"{self.name}/{name}", self.counts, self)
        await actor.started(cell.ctx)
        self.counts.spawns += 1
        self.children[name] = cell.ref
        return cell.ref

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for child in reversed(list(self.children.values())):
            await child.stop()
        self.children.clear()
        await self.actor.stopping(self.ctx)
        if self.parent is not None and self.parent.children.get(self.short_name) is self.ref:
            del self.parent.children[self.short_name]


class InlineRef:
    def __init__(self, cell: InlineCell) -> None:
        self._cell = cell
        self.name = cell.name

    @property
    def stopped(self) -> bool:
        return self._cell.stopped

    async def tell(self, message: Any) -> None:
        cell = self._cell
        cell.counts.tells += 1
        cell.queue.append(message)
        await cell.drain()

    async def ask(self, message: Any, *, timeout: float) -> Any:  # noqa: ASYNC109
        cell = self._cell
        cell.counts.asks += 1
        answer = await cell.handle(message)
        await cell.drain()  # what it sent itself meanwhile (one step per message)
        if isinstance(answer, InlineLater):
            if answer.open:
                raise RuntimeError(f"{self.name}: nothing left to handle, the reply is owed")
            answer = answer._value
        if isinstance(answer, _Raised):
            raise answer.error
        return answer

    async def stop(self, *, timeout: float = math.inf) -> None:  # noqa: ASYNC109
        await self._cell.stop()


class InlineContext:
    def __init__(self, cell: InlineCell) -> None:
        self._cell = cell
        self._log: Any = None

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def ref(self) -> InlineRef:
        return self._cell.ref

    @property
    def log(self) -> Any:
        if self._log is None:
            self._log = structlog.get_logger("actors").bind(actor=self._cell.name)
        return self._log

    @property
    def children(self) -> Mapping[str, InlineRef]:
        return MappingProxyType(self._cell.children)

    async def spawn(self, actor: Any, name: str) -> InlineRef:
        return await self._cell.spawn(actor, name)

    def reply_later(self, request: Any) -> InlineLater:
        cell = self._cell
        if cell.current is not request or cell.later is not None:
            raise RuntimeError("reply_later() takes the request `receive` is handling now")
        cell.later = InlineLater()
        return cell.later


class InlineSystem:
    """Stands in for ``actors.ActorSystem`` (``spawn`` and the ``async with``)."""

    counts = Counts()  # of every InlineSystem since ``bypassed`` began

    def __init__(self, name: str = "system", **_options: Any) -> None:
        self.root = InlineCell(None, name, InlineSystem.counts)

    async def spawn(self, actor: Any, name: str) -> InlineRef:
        return await self.root.spawn(actor, name)

    async def __aenter__(self) -> InlineSystem:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for child in reversed(list(self.root.children.values())):
            await child.stop()


@contextmanager
def bypassed() -> Iterator[Counts]:
    """Within the block, runners made anew run their actors inline; yields the
    counts of what they did. Raises if nothing went through the inline runtime
    (the runner no longer makes its system where this swaps it)."""
    import cutter.walk.runner

    original = cutter.walk.runner.ActorSystem
    InlineSystem.counts = counts = Counts()
    cutter.walk.runner.ActorSystem = InlineSystem  # type: ignore[misc,assignment]
    try:
        yield counts
    finally:
        cutter.walk.runner.ActorSystem = original  # type: ignore[misc]
    if counts.spawns == 0:
        raise RuntimeError(
            "the walk floor bypassed nothing: cutter.walk.runner no longer makes its "
            "ActorSystem by that name; update benchmarks/inline.py"
        )
