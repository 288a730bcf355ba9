"""CPU time beside wall time for the pg figure: this process's (``time.process_time``)
and the PostgreSQL server's, when the server is a local cluster this process can see.

The server's is the sum, over the postmaster and its live children (backends,
walwriter, checkpointer, …), of the nanoseconds each spent on a CPU
(``/proc/PID/schedstat``, first field). Backends the measured work uses stay alive
across it (a pool's, the floor's connection), so the difference of two readings is
what the server spent on that work, plus the little its background processes did
meanwhile. On a server this process cannot see (``$CUTTER_BENCH_DSN``) it is None.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


def _ppid(stat: str) -> int:
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return int(stat.rpartition(")")[2].split()[1])


def cluster_pids(data_dir: Path) -> list[int]:
    """The postmaster (first line of ``postmaster.pid``) and its live children."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # gone since the listing
            if _ppid(stat) == postmaster:
                pids.append(int(entry.name))
    return pids


def cpu_ns(pids: list[int]) -> dict[int, int]:
    """Nanoseconds on a CPU so far, per process still alive."""
    out = {}
    for pid in pids:
        try:
            out[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except OSError:
            continue  # exited meanwhile
    return out


@dataclass(frozen=True)
class Reading:
    client: float  # time.process_time()
    server: dict[int, int] | None  # cpu_ns of the cluster's processes


@dataclass(frozen=True)
class Cpu:
    """CPU seconds spent: this process's, and the server's (None when not measurable)."""

    client: float
    server: float | None


class CpuClock:
    """Reads both clocks; ``None`` as ``data_dir`` measures this process only."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir

    def read(self) -> Reading:
        server = None if self.data_dir is None else cpu_ns(cluster_pids(self.data_dir))
        return Reading(time.process_time(), server)

    @staticmethod
    def spent(start: Reading, end: Reading) -> Cpu:
        """From ``start`` to ``end``: a process that started meanwhile counts whole, one
        that exited meanwhile not at all."""
        server = None
        if start.server is not None and end.server is not None:
            before = start.server
            server = sum(ns - before.get(pid, 0) for pid, ns in end.server.items()) / 1e9
        return Cpu(end.client - start.client, server)
