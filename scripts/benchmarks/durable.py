"""Durable points and store writes a walk makes, counted, and what the least durable
write per point costs on a given filesystem.

A durable point is an acknowledgement: a call of ``RunnerConfig.durable``, after
which what the walk did must survive a power loss (``counting_acknowledgements``).
A store write (a run saved, a KB doc put, leg A's staged rows, …) is what a store
that syncs every write pays a sync for (``counting_writes`` wraps those methods on a
config's store instances, benchmark only). Both counts are the walk's own, not
constants; ``fdatasyncs`` is the floor's price of that many points.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import Clocked

if TYPE_CHECKING:
    from cutter.walk.runner import RunnerConfig

WRITES = {
    "sources": ("publish", "mark_cut"),
    "ius": ("write_staged", "enact", "save_backup", "restore"),
    "ledger": ("append",),
    "kb": ("put",),
    "run_store": ("create", "save", "save_consuming"),
    "kill_switch": ("engage", "release"),
}
BLOCK = 4096  # what each point appends: one page, as a journal or a WAL frame


def stores(config: RunnerConfig) -> dict[str, object]:
    target = config.target
    return {
        "sources": target.sources,
        "ius": target.ius,
        "ledger": target.ledger,
        "kb": config.kb,
        "run_store": config.run_store,
        "kill_switch": config.kill_switch,
    }


def counting_writes(config: RunnerConfig) -> Counter[str]:
    """Count every write-method call on ``config``'s stores from now on, per
    ``store.method``, by wrapping the methods on the instances."""
    counts: Counter[str] = Counter()

    def counting(key: str, method: Callable[..., Any]) -> Callable[..., Any]:
        async def write(*args: Any, **kwargs: Any) -> Any:
            counts[key] += 1
            return await method(*args, **kwargs)

        return write

    for name, store in stores(config).items():
        for method in WRITES[name]:
            bound = getattr(store, method, None)
            if bound is not None:
                setattr(store, method, counting(f"{name}.{method}", bound))
    return counts


def counting_acknowledgements(config: RunnerConfig) -> tuple[RunnerConfig, Callable[[], int]]:
    """``config`` whose ``durable`` counts its calls (the walk's acknowledgements),
    and how to read the count."""
    import dataclasses

    calls = [0]
    inner = config.durable

    async def durable() -> None:
        calls[0] += 1
        await inner()

    return dataclasses.replace(config, durable=durable), lambda: calls[0]


def describe(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def fdatasyncs(directory: Path, count: int) -> Clocked:
    """Wall and CPU seconds for ``count`` durable points done as bare as they go:
    append one ``BLOCK`` to a small file in ``directory`` and ``fdatasync`` it."""
    path = directory / ".fdatasync-floor"
    block = b"x" * BLOCK
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        os.fsync(fd)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            os.write(fd, block)
            os.fdatasync(fd)
        return Clocked(time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        os.close(fd)
        path.unlink()


@contextmanager
def fsync_off() -> Iterator[None]:
    """``os.fsync`` and ``os.fdatasync`` do nothing while the block runs: for a
    figure's setup, which is not measured (a store that syncs in C is not affected)."""
    real = os.fsync, os.fdatasync
    os.fsync = os.fdatasync = lambda fd: None
    try:
        yield
    finally:
        os.fsync, os.fdatasync = real
