"""CPU-heavy work off the event loop, so one large document cannot freeze the daemon.

Discovery (``cutter.discovery``, pure Python and regular expressions), the sha256 of
a whole source and the region hashes of a cut plan take time in proportion to the
document: up to seconds for a document near ``MAX_DOCUMENT_BYTES``. Run on the
event loop, that time is a stall for every connection (``ping``, ``status``,
approvals, the kill switch). ``off_loop(func, *args)`` runs ``func`` in a worker
thread instead, at most ``CPU_WORKERS`` at once per event loop (a bounded
``CapacityLimiter``: 200 walks planning at once queue, they do not start 200
threads), and the loop keeps serving while it runs.

A thread, not a process: ``hashlib`` and ``msgspec`` release the GIL, and pure-Python
discovery gives it back at least every ``sys.getswitchinterval()`` (5 ms); its
longest single C call on the largest corpus document (one regex step, one decode)
is well under a millisecond. ``scripts/benchmarks/offloop.py`` measures ``ping`` while
the largest corpus document is planned and 200 runs walk. A process pool would
also need the source bytes and the candidates pickled across, for no better latency
on documents within the size limit.

Cancelling the caller does not abandon the thread: a walk's phase finishes its
discovery and is then cancelled, as a drain expects (nothing runs unobserved).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio
from anyio.lowlevel import RunVar

CPU_WORKERS = 2  # threads running CPU-heavy work at once, per event loop

T = TypeVar("T")
Args = TypeVarTuple("Args")

_limiter: RunVar[anyio.CapacityLimiter] = RunVar("cutter_cpu_limiter")


def cpu_limiter() -> anyio.CapacityLimiter:
    """The running event loop's limiter of CPU-heavy work (one per loop: a
    ``CapacityLimiter`` belongs to the loop it was first used in)."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(CPU_WORKERS)
        _limiter.set(limiter)
        return limiter


async def off_loop(func: Callable[[Unpack[Args]], T], *args: *Args) -> T:
    """``func(*args)`` in a worker thread, the loop free meanwhile; what it raises
    is raised here."""
    return await anyio.to_thread.run_sync(func, *args, limiter=cpu_limiter())
