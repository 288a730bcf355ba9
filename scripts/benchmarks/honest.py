"""The honest in-process request/reply: the floor of an ``ask``, and of each of a
walk's asks.

One server task takes requests from a ``collections.deque`` and is woken, when
the deque is empty, by a one-shot slot the client fills as it appends; each
request carries its own one-shot slot for the reply. On asyncio a slot is a loop
future; on trio it is a parked task that ``trio.lowlevel.reschedule`` wakes (what
``trio.Event`` does underneath). Nothing else: no bound, no deadline, no failure
handling, no actor. Written from the backends' primitives, never from
``actors``, so that the floor does not move when the runtime does.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from benchmarks.common import Clocked, clocked


async def honest_round_trips(count: int) -> Clocked:
    """Wall and CPU seconds of ``count`` sequential request/replies, on the running
    backend (asyncio or trio)."""
    import sniffio

    if sniffio.current_async_library() == "trio":
        return await _trio(count)
    return await _asyncio(count)


async def _asyncio(count: int) -> Clocked:
    import asyncio

    loop = asyncio.get_running_loop()
    box: deque[tuple[int, asyncio.Future[int]] | None] = deque()
    waiting: list[asyncio.Future[None]] = []

    def wake() -> None:
        if waiting:
            waiting.pop().set_result(None)

    async def server() -> None:
        while True:
            if not box:
                woken = loop.create_future()
                waiting.append(woken)
                await woken
                continue
            request = box.popleft()
            if request is None:
                return
            message, reply = request
            reply.set_result(message)

    task = loop.create_task(server())
    with clocked() as clock:
        for i in range(count):
            reply = loop.create_future()
            box.append((i, reply))
            wake()
            await reply
    box.append(None)
    wake()
    await task
    return clock


_lowlevel: Any = None  # trio.lowlevel, once a trio floor runs


def _abort(_raise_cancel: object) -> Any:
    return _lowlevel.Abort.SUCCEEDED


class _Parked:
    """trio's one-shot slot: the waiter parks, ``set`` reschedules it."""

    __slots__ = ("task", "value")

    def __init__(self) -> None:
        self.task: Any = None
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        if self.task is not None:
            _lowlevel.reschedule(self.task)

    async def wait(self) -> Any:
        self.task = _lowlevel.current_task()
        await _lowlevel.wait_task_rescheduled(_abort)
        return self.value


async def _trio(count: int) -> Clocked:
    global _lowlevel
    import trio

    _lowlevel = trio.lowlevel

    box: deque[tuple[int, _Parked] | None] = deque()
    waiting: list[_Parked] = []

    def wake() -> None:
        if waiting:
            waiting.pop().set(None)

    async def server() -> None:
        while True:
            if not box:
                woken = _Parked()
                waiting.append(woken)
                await woken.wait()
                continue
            request = box.popleft()
            if request is None:
                return
            message, reply = request
            reply.set(message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        await trio.lowlevel.checkpoint()
        with clocked() as clock:
            for i in range(count):
                reply = _Parked()
                box.append((i, reply))
                wake()
                await reply.wait()
        box.append(None)
        wake()
    return clock
