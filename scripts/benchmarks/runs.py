"""The run list of 5,000 stored runs, a page at a time (``cutter.core.run_pages``), on the
embedded run store: the first page of 100, and every page of 100 in turn, each
built and encoded as the ``runs`` reply the daemon sends.

The runs are created through the store's API once, before any clock starts (with
fsync off: the setup is not measured). The floors are the least each listing
needs from the same store: read and decode the sidecars it answers (100 for the
first page, all 5,000 for every page) — on the file store, list the run
directory and read the files; on SQLite, one ``SELECT`` of the sidecars in
run-id order. Everything runs in one event loop, as in the daemon.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from benchmarks.common import Figure, clocked, compared, embedded, measured, scratch_dir
from benchmarks.durable import fsync_off

RUNS = 5000
LIMIT = 100
WRITERS = 50  # runs created at once during the setup, so a batching store batches
AT = datetime(2026, 12, 6, tzinfo=UTC)


def sidecars() -> list[Any]:
    from cutter.core.mode import Mode
    from cutter.core.sidecar import Sidecar
    from cutter.core.states import RunState

    ended = (RunState.FAILED, RunState.ABORTED, RunState.REJECTED, RunState.CLOSEOUT_REPORTED)
    return [
        Sidecar(
            run_id="run-" + hashlib.sha256(f"run {n}".encode()).hexdigest()[:16],
            doc_id=f"doc-{n % 7}",
            mode=Mode.DRY_RUN,
            started_by="operator",
            created_at=AT + timedelta(seconds=n),
            updated_at=AT + timedelta(seconds=n),
            state=ended[n % len(ended)],
        )
        for n in range(RUNS)
    ]


async def measured_async(
    work: Callable[[], Awaitable[object]], repetitions: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per call, after one warm-up call."""
    await work()
    wall, cpu = [], []
    for _ in range(repetitions):
        with clocked() as clock:
            await work()
        wall.append(clock.wall)
        cpu.append(clock.cpu)
    return wall, cpu


def least_read(store: Any, count: int) -> Callable[[], None]:
    """Read and decode the first ``count`` sidecars in run-id order, as bare as the
    store allows."""
    from cutter.core import codec

    db = store.db

    def select() -> None:
        sql = "SELECT run_id, sidecar FROM runs ORDER BY run_id LIMIT ?"
        for run_id, data in db.all(sql, (count,)):
            codec.decode_sidecar(bytes(data), run_id)

    return select


async def measure(state: Path, repetitions: int) -> list[tuple[Any, ...]]:
    from cutter.core.protocol import RunList, encode
    from cutter.core.run_pages import RunFilter, page_of

    async with embedded(state) as config:
        store = config.run_store
        pending = sidecars()

        async def writer() -> None:
            while pending:
                await store.create(pending.pop())

        with fsync_off():  # setup only
            async with anyio.create_task_group() as tg:
                for _ in range(WRITERS):
                    tg.start_soon(writer)
        everything = RunFilter()

        async def first_page() -> None:
            got = await page_of(store, everything, LIMIT, None)
            assert len(got.runs) == LIMIT
            assert got.next_cursor is not None
            encode(RunList(runs=tuple(got.runs), next_cursor=got.next_cursor))

        async def all_pages() -> None:
            cursor, seen = None, 0
            while True:
                got = await page_of(store, everything, LIMIT, cursor)
                runs, cursor = got.runs, got.next_cursor
                encode(RunList(runs=tuple(runs), next_cursor=cursor))
                seen += len(runs)
                if cursor is None:
                    break
            assert seen == RUNS, seen

        out = []
        for name, work, count in (("runs-page", first_page, LIMIT), ("runs-all", all_pages, RUNS)):
            wall, cpu = await measured_async(work, repetitions)
            floor_wall, floor_cpu = measured(least_read(store, count), repetitions)
            out.append((name, count, wall, cpu, floor_wall, floor_cpu, type(store).__name__))
        return out


def run(repetitions: int, quick: bool) -> list[Figure]:
    limit = 3.0
    with scratch_dir("runs") as tmp:
        got = anyio.run(measure, Path(tmp), repetitions)
    return [
        compared(
            name,
            "ms",
            [s * 1000 for s in wall],
            [s * 1000 for s in floor_wall],
            target=f"<= {limit:g}x reading the {count:,} sidecars it lists",
            limit=limit,
            note=f"{RUNS:,} runs in the embedded {store}, pages of {LIMIT}",
            cpu=[s * 1000 for s in cpu],
            floor_cpu=[s * 1000 for s in floor_cpu],
        )
        for name, count, wall, cpu, floor_wall, floor_cpu, store in got
    ]
