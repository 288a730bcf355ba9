"""CPU-heavy work off the event loop, so one large document cannot freeze the daemon.

Discovery (``cutter.discovery``, pure Python and regular expressions), the sha256 of
a whole source and the region hashes of a cut plan take time in proportion to the
document: up to seconds for a document near ``MAX_DOCUMENT_BYTES``. Run on the
event loop, that time is a stall for every connection (``ping``, ``status``,
approvals, the kill switch). Here it runs elsewhere, at most ``CPU_WORKERS`` jobs
at once per event loop (a bounded ``CapacityLimiter``: 200 walks planning at once
queue, they do not start 200 workers), and the loop keeps serving.

- ``off_loop(func, *args, size=N)``: a worker thread. Enough for hashing (``hashlib``
  and ``msgspec`` release the GIL) and for anything short. Work on at most
  ``ON_LOOP_BYTES`` stays on the loop (the hop would cost more).
- ``discover_off_loop(discoverer, data)``: discovery. In the daemon
  (``use_worker_processes()``) the ``TextDiscoverer``'s cut runs in a worker
  process (``anyio.to_process``): pure-Python discovery holds the GIL through each
  regex step and string operation, so in a thread it still stalls the loop for
  a good part of its run (``scripts/bench.py --only offloop``, docs/performance.md:
  the longest stall while the largest corpus document is discovered is about
  two thirds of the on-loop time from a thread, a few ms from a process).
  Elsewhere (the Python API, tests) the ``TextDiscoverer`` takes a worker thread,
  or stays on the loop for a small document; a discoverer that is not the
  ``TextDiscoverer`` always takes a thread, its cost being unknown.

Cancelling the caller does not abandon a thread: a walk's phase finishes its
discovery and is then cancelled, as a drain expects (nothing runs unobserved).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.lowlevel
import anyio.to_process
from anyio.lowlevel import RunVar

from cutter.core.ports import Discoverer
from cutter.core.records import Candidate
from cutter.discovery import Discovery, TextDiscoverer, discover

CPU_WORKERS = 2  # threads running CPU-heavy work at once, per event loop
# Work on this many bytes or fewer stays on the loop: hashing them takes about 60 us,
# discovering or planning them well under a millisecond, while a hop to a worker
# thread and back costs about 100 us of CPU (a process, milliseconds). A fleet of
# small walks made 24 hops per run before (docs/performance.md). The daemon still
# discovers every document in a worker process: 32 walk segments each discovering a
# small document on the loop made its ping p99 under load 65 ms instead of 12.
ON_LOOP_BYTES = 64 * 1024

T = TypeVar("T")
Args = TypeVarTuple("Args")

_limiter: RunVar[anyio.CapacityLimiter] = RunVar("cutter_cpu_limiter")
_processes: RunVar[bool] = RunVar("cutter_cpu_processes", default=False)


def use_worker_processes() -> None:
    """From now on, in the running event loop, the ``TextDiscoverer``'s discovery
    runs in worker processes (the daemon's choice; they end with the loop)."""
    _processes.set(True)


def cpu_limiter() -> anyio.CapacityLimiter:
    """The running event loop's limiter of CPU-heavy work (one per loop: a
    ``CapacityLimiter`` belongs to the loop it was first used in)."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(CPU_WORKERS)
        _limiter.set(limiter)
        return limiter


async def off_loop(func: Callable[[Unpack[Args]], T], *args: *Args, size: int | None = None) -> T:
    """``func(*args)`` in a worker thread, the loop free meanwhile; what it raises
    is raised here. Work on at most ``ON_LOOP_BYTES`` (``size``: the bytes it goes
    through) runs on the loop instead, after a checkpoint: it takes less than the hop."""
    if size is not None and size <= ON_LOOP_BYTES:
        await anyio.lowlevel.checkpoint()
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args, limiter=cpu_limiter())


def _candidates(discoverer: Discoverer, data: bytes) -> tuple[Candidate, ...]:
    return tuple(discoverer.discover(data))


async def discover_off_loop(discoverer: Discoverer, data: bytes) -> tuple[Candidate, ...]:
    """``discoverer.discover(data)``, in a worker process when the loop uses them and
    the discoverer is the ``TextDiscoverer`` (a pure function of the bytes), else in a
    worker thread."""
    found = await explain_off_loop(discoverer, data)
    if found is not None:
        return found.candidates
    return await off_loop(_candidates, discoverer, data)  # its cost is not known: a thread


async def explain_off_loop(discoverer: Discoverer, data: bytes) -> Discovery | None:
    """The ``TextDiscoverer``'s whole ``Discovery`` (profile, candidates, warnings) off
    the loop; ``None`` for another discoverer."""
    if not isinstance(discoverer, TextDiscoverer):
        return None
    if _processes.get():  # the daemon: latency first, even a small document leaves the loop
        return await anyio.to_process.run_sync(discover, data, limiter=cpu_limiter())
    return await off_loop(discover, data, size=len(data))
