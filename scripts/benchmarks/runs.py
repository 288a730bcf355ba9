"""The run list of 5,000 stored runs, a page at a time (``cutter.run_pages``), on the
embedded file store: the first page of 100, and every page of 100 in turn, each
built and encoded as the ``runs`` reply the daemon sends.

The runs are saved through the store's API once, before any clock starts (with
fsync off: the setup is not measured). The floors are the least each listing
needs from the same store: list the run directory and read and decode the
sidecars it answers (100 for the first page, all 5,000 for every page). CPU time
per repetition is in the note beside wall time.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from benchmarks.common import Figure, compared, scratch_dir

RUNS = 5000
LIMIT = 100
AT = datetime(2026, 12, 6, tzinfo=UTC)


def sidecars() -> list[object]:
    from cutter.mode import Mode
    from cutter.sidecar import Sidecar
    from cutter.states import RunState

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


def measured(work: Callable[[], object], repetitions: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per call, after one warm-up call."""
    work()
    wall, cpu = [], []
    for _ in range(repetitions):
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def run(repetitions: int, quick: bool) -> list[Figure]:
    from cutter import codec
    from cutter.protocol import RunList, encode
    from cutter.run_pages import RunFilter, page_of
    from cutter.stores.atomic import read_bytes
    from cutter.stores.files import SUFFIX, FileRunStore

    with scratch_dir("runs") as tmp:
        store = FileRunStore(Path(tmp))
        real_fsync = os.fsync
        os.fsync = lambda fd: None  # setup only
        try:

            async def save_all() -> None:
                for sidecar in sidecars():
                    await store.save(sidecar)  # type: ignore[arg-type]

            anyio.run(save_all)
        finally:
            os.fsync = real_fsync
        runs_dir = Path(tmp) / "runs"
        everything = RunFilter()

        def first_page() -> None:
            async def one() -> None:
                got = await page_of(store, everything, LIMIT, None)
                runs, cursor = got.runs, got.next_cursor
                assert len(runs) == LIMIT
                assert cursor is not None
                encode(RunList(runs=tuple(runs), next_cursor=cursor))

            anyio.run(one)

        def all_pages() -> None:
            async def every() -> None:
                cursor, seen = None, 0
                while True:
                    got = await page_of(store, everything, LIMIT, cursor)
                    runs, cursor = got.runs, got.next_cursor
                    encode(RunList(runs=tuple(runs), next_cursor=cursor))
                    seen += len(runs)
                    if cursor is None:
                        break
                assert seen == RUNS, seen

            anyio.run(every)

        def read_sidecars(count: int) -> Callable[[], None]:
            def floor() -> None:
                names = sorted(n for n in os.listdir(runs_dir) if n.endswith(SUFFIX))
                for name in names[:count]:
                    data = read_bytes(runs_dir / name)
                    assert data is not None
                    codec.decode_sidecar(data, name)

            return floor

        figures = []
        for name, work, floor, count, limit in (
            ("runs-page", first_page, read_sidecars(LIMIT), LIMIT, 3.0),
            ("runs-all", all_pages, read_sidecars(RUNS), RUNS, 3.0),
        ):
            wall, cpu = measured(work, repetitions)
            floor_wall, floor_cpu = measured(floor, repetitions)
            figures.append(
                compared(
                    name,
                    "ms",
                    [s * 1000 for s in wall],
                    [s * 1000 for s in floor_wall],
                    target=f"<= {limit:g}x reading the {count:,} sidecars it lists",
                    limit=limit,
                    note=(
                        f"{RUNS:,} runs on the file store, pages of {LIMIT}; CPU "
                        f"{statistics.median(cpu) * 1000:.1f} ms (floor "
                        f"{statistics.median(floor_cpu) * 1000:.1f} ms) per repetition"
                    ),
                )
            )
        return figures
