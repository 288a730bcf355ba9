"""The one-shot slot an ask's reply arrives in, with the ask's deadline.

An ask needs room for one outcome and a deadline. anyio's portable tools for
that (a one-item memory object stream and ``fail_after``) cost more on asyncio
than the rest of the round trip together: a cancel scope alone is about 7 µs, a
stream pair 2 µs (``scripts/benchmarks/ask.py``). So on asyncio the slot is a
loop future and the deadline a loop timer that fills it with "timed out"; on
any other backend (trio) it is an ``anyio.Event`` waited on under
``anyio.move_on_after``. Either way the first outcome wins and any later one is
dropped, so a reply arriving after the asker gave up vanishes without error.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import anyio

from actors.envelope import Outcome


class Reply(Protocol):
    def resolve(self, outcome: Outcome) -> None:
        """Deliver ``outcome`` unless one was delivered or the asker gave up."""
        ...

    async def wait(self, timeout: float) -> Outcome | None:  # noqa: ASYNC109 - the ask's timeout
        """The outcome, or None once ``timeout`` seconds passed without one."""
        ...


def new_reply() -> Reply:
    """A slot for the running backend: a future on asyncio, an event elsewhere."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _EventReply()
    return _FutureReply(loop)


def _expire(future: asyncio.Future[Outcome | None]) -> None:
    if not future.done():
        future.set_result(None)


class _FutureReply:
    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[Outcome | None] = loop.create_future()

    def resolve(self, outcome: Outcome) -> None:
        if not self._future.done():
            self._future.set_result(outcome)

    async def wait(self, timeout: float) -> Outcome | None:  # noqa: ASYNC109
        timer = self._loop.call_later(timeout, _expire, self._future)
        try:
            return await self._future
        finally:
            timer.cancel()


class _EventReply:
    __slots__ = ("_event", "_outcome")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._outcome: Outcome | None = None

    def resolve(self, outcome: Outcome) -> None:
        if self._outcome is None:
            self._outcome = outcome
            self._event.set()

    async def wait(self, timeout: float) -> Outcome | None:  # noqa: ASYNC109
        with anyio.move_on_after(timeout):
            await self._event.wait()
        return self._outcome
