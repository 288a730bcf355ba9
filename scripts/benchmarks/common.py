"""What every figure shares: samples, the figure record (beside a floor, or
absolute), timing (wall and CPU), scratch directories beside
the repository, and the embedded stores every embedded figure runs on."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cutter.core.ports import SourcePublisher

if TYPE_CHECKING:
    from cutter.walk.runner import RunnerConfig

ROOT = Path(__file__).resolve().parent.parent.parent
CORPUS = ROOT / "tests" / "corpus"


def scratch_dir(name: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory inside the repository, so on its filesystem (not a
    tmpfs): what fsync costs there is what the embedded stores pay."""
    return tempfile.TemporaryDirectory(dir=ROOT, prefix=f".bench-{name}-")


@asynccontextmanager
async def embedded(state_dir: Path) -> AsyncIterator[RunnerConfig]:
    """The embedded default's stores under ``state_dir`` (made as needed), as the
    daemon and the Python API get them. Every figure on the embedded stores takes
    them from here, so a change of the embedded default is one edit."""
    from cutter.assembly.embedded import embedded_config

    async with embedded_config(state_dir) as config:
        yield config


async def publish(config: RunnerConfig, doc_id: str, data: bytes) -> None:
    """Store ``data`` as ``doc_id``'s current version in ``config``'s sources (an
    ingest step: every sources store is a ``SourcePublisher``)."""
    sources = config.target.sources
    assert isinstance(sources, SourcePublisher)
    await sources.publish(doc_id, data)


@dataclass
class Clocked:
    """Wall (``perf_counter``) and CPU (``process_time``: this process, every
    thread) seconds of a block, once it has ended."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def clocked() -> Iterator[Clocked]:
    out = Clocked()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out.wall = time.perf_counter() - wall
        out.cpu = time.process_time() - cpu


@dataclass(frozen=True)
class Sample:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Sample:
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    value: Sample
    floor: Sample | None
    ratio: float | None  # value / floor, in the direction the target is stated
    target: str
    met: bool
    note: str = ""
    # The same figure computed from this process's CPU time (process_time) instead
    # of wall time, in the same unit: on a shared machine, wall time includes the
    # time other processes held the CPUs.
    cpu: Sample | None = None
    floor_cpu: Sample | None = None


def optional(values: list[float] | None) -> Sample | None:
    return Sample.of(values) if values else None


def compared(
    name: str,
    unit: str,
    value: list[float],
    floor: list[float],
    *,
    target: str,
    limit: float,
    higher_is_better: bool = False,
    note: str = "",
    cpu: list[float] | None = None,
    floor_cpu: list[float] | None = None,
) -> Figure:
    """A figure beside its floor: the ratio of medians, checked against ``limit``.
    ``cpu`` and ``floor_cpu``: the same figures from CPU time, when measured."""
    ratio = statistics.median(value) / statistics.median(floor)
    met = ratio >= limit if higher_is_better else ratio <= limit
    return Figure(
        name,
        unit,
        Sample.of(value),
        Sample.of(floor),
        ratio,
        target,
        met,
        note,
        optional(cpu),
        optional(floor_cpu),
    )


def absolute(
    name: str,
    unit: str,
    values: list[float],
    *,
    target: str,
    limit: float,
    higher_is_better: bool = True,
    note: str = "",
    cpu: list[float] | None = None,
) -> Figure:
    """A figure with no floor: the median checked against ``limit`` itself."""
    median = statistics.median(values)
    met = median >= limit if higher_is_better else median <= limit
    return Figure(name, unit, Sample.of(values), None, None, target, met, note, optional(cpu))


def timed(work: Callable[[], object], repetitions: int) -> list[float]:
    """Seconds per call of ``work``, after one warm-up call (imports, caches)."""
    return measured(work, repetitions)[0]


def measured(work: Callable[[], object], repetitions: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per call of ``work``, after one warm-up call."""
    work()
    wall, cpu = [], []
    for _ in range(repetitions):
        with clocked() as clock:
            work()
        wall.append(clock.wall)
        cpu.append(clock.cpu)
    return wall, cpu
