"""A real daemon under 2,000 idle connections and 300 half-sent 1 MiB frames
(issue 12 §3), beside the same daemon idle.

Each repetition starts a ``cutter daemon`` (file stores, JSON log to a file,
``--max-connections 2500`` so every client gets a slot and the buffer budget is
what bounds the frames, the other limits at their defaults), then:

1. idle: ``PINGS`` pings on one connection (their p99: the floor), VmRSS (the floor);
2. opens ``IDLE`` connections that send nothing, then ``HALF_SENT`` that each send
   1 MiB of a frame without its newline, all at once; the daemon holds what its
   ``--buffer-budget`` allows and refuses the rest ``E_BUFFER_BUDGET_EXCEEDED``.
   Meanwhile a process of its own pings on one connection, one in flight, until
   the flood is over and at least ``PINGS`` were answered (the figure: their p99);
3. VmRSS with every connection still open, and the daemon's CPU seconds over the
   flood (/proc/PID/stat).

Two figures: ping latency during the flood against the idle floor, and VmRSS
after the flood against the idle daemon's. The target for memory is what the
budget promises (docs/operations.md#connection-limits), not a ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.queues
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, Sample
from benchmarks.daemon import cpu_seconds, daemon_process, ready
from cutter.core.state_dir import StateDir

IDLE = 2000
HALF_SENT = 300
MAX_CONNECTIONS = 2500
PINGS = 200
MIB = 1 << 20
BUDGET = 64 * MIB  # the daemon's default --buffer-budget
# What the daemon may grow by: the budget, once more for the allocator and the
# copies a read makes, 32 MiB for the connections' tasks and buffers.
RSS_GROWTH_TARGET = 2 * BUDGET + 32 * MIB


def run(repetitions: int, quick: bool) -> list[Figure]:
    samples = [one_repetition() for _ in range(repetitions)]
    idle_ms = [s["idle_ping_ms"] for s in samples]
    flood_ms = [s["flood_ping_ms"] for s in samples]
    rss_before = [s["rss_before"] / MIB for s in samples]
    rss_after = [s["rss_after"] / MIB for s in samples]
    growth = max(a - b for a, b in zip(rss_after, rss_before, strict=True))
    cpu = statistics.median(s["cpu_s"] for s in samples)
    wall = statistics.median(s["wall_s"] for s in samples)
    held = statistics.median(s["held"] for s in samples)
    ping_ratio = statistics.median(flood_ms) / statistics.median(idle_ms)
    rss_ratio = statistics.median(rss_after) / statistics.median(rss_before)
    note = (
        f"{IDLE} idle + {HALF_SENT} half-sent 1 MiB frames ({held:.0f} held, the rest refused); "
        f"flood took {wall:.2f} s wall, {cpu:.2f} s daemon CPU; "
        f"{os.cpu_count()} CPUs shared with the clients"
    )
    return [
        Figure(
            "conn-ping",
            "ms",
            Sample.of(flood_ms),
            Sample.of(idle_ms),
            ping_ratio,
            "ping p99 during the flood <= 50 ms (issue 12)",
            statistics.median(flood_ms) <= 50.0,
            note,
        ),
        Figure(
            "conn-rss",
            "MiB",
            Sample.of(rss_after),
            Sample.of(rss_before),
            rss_ratio,
            f"growth <= {RSS_GROWTH_TARGET // MIB} MiB (2 x budget + 32)",
            growth * MIB <= RSS_GROWTH_TARGET,
            f"largest growth {growth:.1f} MiB; budget {BUDGET // MIB} MiB",
        ),
    ]


def one_repetition() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cutter-bench-conn-") as tmp:
        state_dir = Path(tmp) / "state"
        with daemon_process(
            Path(tmp), state_dir, "--max-connections", str(MAX_CONNECTIONS)
        ) as daemon:
            return asyncio.run(measure(daemon, StateDir(state_dir).socket))


async def measure(daemon: subprocess.Popen[bytes], socket: Path) -> dict[str, float]:
    await ready(daemon, socket)
    idle_ms = ping_p99(socket, None)
    rss_before = vm_rss(daemon.pid)
    cpu_before = cpu_seconds(daemon.pid)
    context = multiprocessing.get_context("fork")
    flooded = context.Event()
    results: multiprocessing.queues.SimpleQueue[float] = context.SimpleQueue()
    pinger = context.Process(target=_pinger, args=(socket, flooded, results))
    pinger.start()
    start = time.perf_counter()
    idle = [await asyncio.open_unix_connection(socket) for _ in range(IDLE)]
    outcomes = await asyncio.gather(*(half_send(socket) for _ in range(HALF_SENT)))
    wall = time.perf_counter() - start
    flooded.set()
    flood_ms = await asyncio.to_thread(results.get)
    await asyncio.to_thread(pinger.join)
    rss_after = vm_rss(daemon.pid)
    cpu = cpu_seconds(daemon.pid) - cpu_before
    if daemon.poll() is not None:
        raise RuntimeError(f"the daemon exited {daemon.returncode} under the flood")
    for _, w in [*idle, *(o for o in outcomes if o is not None)]:
        w.close()
    return {
        "idle_ping_ms": idle_ms,
        "flood_ping_ms": flood_ms,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "cpu_s": cpu,
        "wall_s": wall,
        "held": sum(o is not None for o in outcomes),
    }


def _pinger(socket: Path, flooded: Any, results: Any) -> None:
    """In a process of its own, so the flood's clients do not delay it."""
    results.put(ping_p99(socket, flooded))


async def half_send(
    socket: Path,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """1 MiB of a frame, no newline; the connection if the daemon took it all, else
    None (it refused and closed)."""
    reader, writer = await asyncio.open_unix_connection(socket)
    writer.write(b'{"cmd":"ping","id":"' + b"x" * (MIB - 32))
    try:
        await writer.drain()
    except OSError:  # refused (tests/daemon/test_limits.py checks the code)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()  # retrieves the broken pipe, so asyncio keeps quiet
        return None
    return reader, writer


def ping_p99(socket: Path, until: Any) -> float:
    """The 99th percentile of milliseconds per ping on one blocking connection, one
    in flight: ``PINGS`` of them, and on until ``until`` (an Event) is set."""
    import socket as sockets

    from cutter.core.protocol import Ping, Pong, decode_reply, encode

    out: list[float] = []
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as conn:
        conn.connect(str(socket))
        stream = conn.makefile("rb")
        i = 0
        while len(out) < PINGS or (until is not None and not until.is_set()):
            i += 1
            start = time.perf_counter()
            conn.sendall(encode(Ping(id=f"p{i}")))
            reply = decode_reply(stream.readline())
            out.append((time.perf_counter() - start) * 1000)
            if not isinstance(reply, Pong):
                raise RuntimeError(f"ping answered {reply}")
        stream.close()
    return statistics.quantiles(out, n=100)[98]


def vm_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024.0
    raise RuntimeError(f"no VmRSS for {pid}")
