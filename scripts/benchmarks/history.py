"""A live cut of a 1,000-unit document (both gates, scripted approvals) on the
embedded stores, fsync on, after 0, 1,000 and 10,000 earlier cuts: is the cost
flat as a knowledge base's history grows?

Each history is built before any clock starts, through the stores' own APIs
(not by walking runs, which would take hours at 10,000): for each earlier cut, a
small one-unit document is published, its row written staged and enacted, its
source version marked cut, and a cut entry appended to the ledger — the target
writes a live cut makes, ``HISTORY_WORKERS`` documents at a time. The figure is
the cut after 10,000 against the cut after none, in three state directories open
side by side and measured in turn, so drift hits all three alike; the cut after
1,000 is in the note. Each measured cut is of a document of its own (a first cut
of it), so the history grows by one cut per repetition, which is noise.
"""

from __future__ import annotations

import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import Figure, compared, embedded, publish, scratch_dir
from benchmarks.durable import fsync_off
from benchmarks.embedded import checked_walk
from benchmarks.walk import walk_once

if TYPE_CHECKING:
    from cutter.walk.runner import RunnerConfig

UNITS = 1000
HISTORIES = (0, 1000, 10000)
HISTORY_WORKERS = 32  # earlier cuts written at once, so a batching store can batch them
BUILD_SECONDS = 600.0  # per history at most; a store whose writes grow with it stops short
QUICK_BUILD_SECONDS = 90.0


def document(units: int) -> bytes:
    """A document of ``units`` articles, which ``TextDiscoverer`` cuts into ``units`` units."""
    from cutter.stores.memory.seeded import InMemoryDiscoverer

    return InMemoryDiscoverer.seeded(units).source


async def earlier_cut(config: RunnerConfig, i: int) -> None:
    """What a live cut writes to the target, for a one-unit document of its own."""
    from cutter.core.canonical import sha256_hex
    from cutter.core.ledger import CutEnvelope
    from cutter.core.records import IURow, IUState

    doc_id, run_id, change_set_id = f"earlier-{i}", f"run-earlier-{i}", f"cs-earlier-{i}"
    data = f"# Article 1\n\nEarlier document {i}.\n".encode()
    await publish(config, doc_id, data)
    target = config.target
    version = await target.sources.current(doc_id)
    row = IURow(
        iu_id=f"iu-earlier-{i}",
        doc_id=doc_id,
        sv_id=version.sv_id,
        ordinal=0,
        label="Article 1",
        kind="unit",
        start=0,
        end=len(data),
        region_sha=sha256_hex(data),
        body=data,
        state=IUState.STAGED,
        change_set_id=change_set_id,
    )
    await target.ius.write_staged([row])
    await target.ius.enact(change_set_id)
    await target.sources.mark_cut(version.sv_id, change_set_id)
    await target.ledger.append(
        CutEnvelope(
            run_id=run_id,
            doc_id=doc_id,
            sv_id=version.sv_id,
            change_set_id=change_set_id,
            manifest_digest=sha256_hex(data),
            iu_count=1,
        )
    )


async def build_history(config: RunnerConfig, count: int, seconds: float) -> int:
    """Up to ``count`` earlier cuts, for at most about ``seconds``; how many were made."""
    import anyio

    deadline = time.monotonic() + seconds
    made = 0

    async def worker(first: int) -> None:
        nonlocal made
        for i in range(first, count, HISTORY_WORKERS):
            if time.monotonic() > deadline:
                return
            await earlier_cut(config, i)
            made += 1

    with fsync_off():
        async with anyio.create_task_group() as tg:
            for first in range(min(HISTORY_WORKERS, count)):
                tg.start_soon(worker, first)
    return made


async def measure(
    base: Path, repetitions: int, histories: tuple[int, ...], seconds: float
) -> dict[str, Any]:
    from cutter.core.mode import Mode, enable_execution

    enable_execution()
    big = document(UNITS)
    cuts: dict[int, list[Any]] = {h: [] for h in histories}
    built: dict[int, tuple[int, float]] = {}
    async with AsyncExitStack() as stack:
        configs = {h: await stack.enter_async_context(embedded(base / f"h{h}")) for h in histories}
        for h, config in configs.items():
            start = time.perf_counter()
            made = await build_history(config, h, seconds)
            built[h] = made, time.perf_counter() - start
            for r in range(repetitions + 1):
                await publish(config, f"big-{r}", big)
        for config in configs.values():  # warm up, and check the cut is the one meant
            await checked_walk(config, "big-0", Mode.LIVE, UNITS)
        for r in range(1, repetitions + 1):
            for h, config in configs.items():
                cuts[h].append(await walk_once(config, f"big-{r}", Mode.LIVE))
        entries = {h: len(await c.target.ledger.entries()) for h, c in configs.items()}
    return {"cuts": cuts, "built": built, "entries": entries}


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    seconds = QUICK_BUILD_SECONDS if quick else BUILD_SECONDS
    with scratch_dir("history") as tmp:
        got = anyio.run(measure, Path(tmp), repetitions, HISTORIES, seconds)
    cuts, built, entries = got["cuts"], got["built"], got["entries"]
    first, middle, last = HISTORIES

    def ms(h: int, what: str = "wall") -> float:
        return statistics.median(getattr(c, what) for c in cuts[h]) * 1e3

    short = [h for h in HISTORIES if built[h][0] < h]
    stopped = (
        f"; BUILD STOPPED at {seconds:.0f} s: "
        + ", ".join(f"{built[h][0]:,} of {h:,} earlier cuts made" for h in short)
        if short
        else ""
    )
    return compared(
        "history",
        "ms",
        [c.wall * 1e3 for c in cuts[last]],
        [c.wall * 1e3 for c in cuts[first]],
        target=f"<= 1.2x the cut after {first}",
        limit=1.2,
        note=(
            f"live cut + two resumes of a {UNITS:,}-unit document, embedded stores, fsync "
            f"on, after {built[last][0]:,} earlier cuts (floor: after {built[first][0]}); "
            f"after {built[middle][0]:,}: {ms(middle):.0f} ms wall, "
            f"{ms(middle, 'cpu'):.0f} ms CPU; each earlier cut written through the store "
            "APIs (publish, write_staged, enact, mark_cut, ledger append; fsync off), built "
            f"in {', '.join(f'{built[h][1]:.1f} s' for h in HISTORIES)}{stopped}; ledger "
            f"entries at the end {', '.join(f'{entries[h]:,}' for h in HISTORIES)}"
        ),
        cpu=[c.cpu * 1e3 for c in cuts[last]],
        floor_cpu=[c.cpu * 1e3 for c in cuts[first]],
    )
