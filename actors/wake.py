"""One-shot slots that wake one waiting task, and the clock, for the running backend.

A mailbox's waiting receiver, a sender waiting for room and an ask's reply each
wait on a slot: every setter checks ``done()`` first, so the first value wins and
a reply arriving after its asker gave up vanishes without error. anyio's portable tools
(an ``Event``, a memory object stream, a cancel scope) cost more than the rest
of a round trip, so the slot is what each backend itself wakes a task with: a
loop future on asyncio, a parked task rescheduled on trio (what ``trio.Event``
does underneath), an ``anyio.Event`` elsewhere. The backend's clock and current
task come from here too: this is the only module of ``actors/`` that names a
backend.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Generator
from typing import Any, NamedTuple, Protocol

import anyio

EXPIRED: Any = object()
"""What ``actors.deadlines`` sets in a slot whose deadline passed."""


class Slot(Protocol):
    """Holds one value; awaiting it waits (cancellably) until the value is set.

    The interface is the part of ``asyncio.Future`` the runtime uses, so that on
    asyncio a plain loop future is the slot (made, set and awaited in C). Setters
    check ``done()`` first: a slot whose waiter was cancelled, or that holds a value
    already, takes no other."""

    def done(self) -> bool: ...

    def set_result(self, value: Any) -> None: ...

    def __await__(self) -> Generator[Any, None, Any]: ...


class Backend(NamedTuple):
    new_slot: Callable[[], Slot]
    now: Callable[[], float]
    """Seconds, in the time base the backend's cancel scopes use."""
    current_task: Callable[[], object]
    """The running task, as an object compared by identity (anyio's ``TaskInfo`` is
    built anew at each call)."""


def backend() -> Backend:
    """The running backend's slot factory, clock and current task."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        # The base loop's clock is time.monotonic (cancel scopes use the same); calling
        # it directly spares a method call per ask.
        clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        return Backend(loop.create_future, clock, asyncio.current_task)
    global _lowlevel
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio_clock = trio.lowlevel.current_clock()
        except RuntimeError:
            pass
        else:
            _lowlevel = trio.lowlevel
            # The run's clock, as its cancel scopes read it.
            return Backend(_TaskSlot, trio_clock.current_time, trio.lowlevel.current_task)
    return Backend(_EventSlot, anyio.current_time, _anyio_task_id)


def _anyio_task_id() -> object:
    return anyio.get_current_task().id


_lowlevel: Any = None
"""``trio.lowlevel`` once a trio run made slots (trio itself stays optional)."""


class _TaskSlot:
    """trio: the waiting task parks with ``wait_task_rescheduled`` and ``set_result``
    reschedules it (what ``trio.Event`` does underneath, without its parking lot).
    A cancelled waiter unparks itself (``Abort.SUCCEEDED``) and the slot counts as
    done, like a cancelled future."""

    __slots__ = ("_done", "_task", "_value")

    def __init__(self) -> None:
        self._task: Any = None
        self._done = False
        self._value: Any = None

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._done = True
        self._value = value
        task = self._task
        if task is not None:
            self._task = None
            _lowlevel.reschedule(task)

    def _abort(self, _raise_cancel: object) -> Any:
        self._task = None
        self._done = True
        return _lowlevel.Abort.SUCCEEDED

    def __await__(self) -> Generator[Any, None, Any]:
        if not self._done:
            self._task = _lowlevel.current_task()
            yield from _lowlevel.wait_task_rescheduled(self._abort).__await__()
        return self._value


class _EventSlot:
    """Any other backend: an ``anyio.Event`` and the value beside it."""

    __slots__ = ("_event", "_value")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._value: Any = None

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, value: Any) -> None:
        self._value = value
        self._event.set()

    async def _wait(self) -> Any:
        await self._event.wait()
        return self._value

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()
