"""What every figure shares: samples, the figure record (beside a floor, or
absolute), timing, the bare-hop floor, scratch directories beside the repository."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CORPUS = ROOT / "tests" / "corpus"


def scratch_dir(name: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory inside the repository, so on its filesystem (not a
    tmpfs): what fsync costs there is what the embedded stores pay."""
    return tempfile.TemporaryDirectory(dir=ROOT, prefix=f".bench-{name}-")


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
) -> Figure:
    """A figure beside its floor: the ratio of medians, checked against ``limit``."""
    ratio = statistics.median(value) / statistics.median(floor)
    met = ratio >= limit if higher_is_better else ratio <= limit
    return Figure(name, unit, Sample.of(value), Sample.of(floor), ratio, target, met, note)


def absolute(
    name: str,
    unit: str,
    values: list[float],
    *,
    target: str,
    limit: float,
    higher_is_better: bool = True,
    note: str = "",
) -> Figure:
    """A figure with no floor: the median checked against ``limit`` itself."""
    median = statistics.median(values)
    met = median >= limit if higher_is_better else median <= limit
    return Figure(name, unit, Sample.of(values), None, None, target, met, note)


def timed(work: Callable[[], object], repetitions: int) -> list[float]:
    """Seconds per call of ``work``, after one warm-up call (imports, caches)."""
    work()
    out = []
    for _ in range(repetitions):
        start = time.perf_counter()
        work()
        out.append(time.perf_counter() - start)
    return out


async def bare_hops(count: int, then: Callable[[], None] | None = None) -> float:
    """Seconds for ``count`` request/response hops over two anyio memory object
    streams (the floor of ``ask`` and of the walk), plus ``then`` if given."""
    import anyio

    to_server, server_in = anyio.create_memory_object_stream[int](16)
    to_client, client_in = anyio.create_memory_object_stream[int](16)

    async def server() -> None:
        async with server_in, to_client:
            async for message in server_in:
                await to_client.send(message)

    async with anyio.create_task_group() as tg, to_server, client_in:
        tg.start_soon(server)
        start = time.perf_counter()
        for i in range(count):
            await to_server.send(i)
            await client_in.receive()
        if then is not None:
            then()
        elapsed = time.perf_counter() - start
        await to_server.aclose()
    return elapsed
