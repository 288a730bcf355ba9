"""1,000 concurrent runs to closeout in one process, both gates approved by a
scripted reviewer, on the embedded file stores (fsync on); and what the process
holds while all of them wait at SG_1.

Each repetition is a fresh subprocess (``python -m benchmarks.fleet STATE RUNS``)
on a fresh state directory whose published documents are hard links to one
template, so its peak RSS and its RSS deltas are its own. In it: one warm-up
walk, then ``cut_batch`` of every document (all paused at SG_1), a measurement
of the paused process, then a reviewer that reads each run, approves and resumes
it through SG_2 to closeout, all runs at once. Rate: runs over the cut and the
review time (the measurement between them excluded). Log events are rendered
as JSON into /dev/null, as a daemon writes them to a file, so they cost their
rendering but are not held in memory.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import ROOT, Figure, absolute, scratch_dir
from benchmarks.files import file_config, file_walk, publish
from benchmarks.walk import approve_and_resume

if TYPE_CHECKING:
    from cutter.runner import Runner

RUNS = 1000
QUICK_RUNS = 150  # --quick: the figure's shape within the minute; the full run is 1,000
REPETITIONS = 5  # at most: a repetition of 1,000 runs takes most of a minute


def vm_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def registered_actors(runner: Runner) -> int:
    """Actors the runner's system still knows: its roots and their children, down."""
    system = runner._system
    assert system is not None
    pending = list(system._roots.values())
    count = 0
    while pending:
        ref = pending.pop()
        count += 1
        pending.extend(ref._cell.child_refs.values())
    return count


def alive() -> Counter[str]:
    """Actor cells and memory object streams still alive anywhere, per the collector."""
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from actors.cell import ActorCell

    kinds: Counter[str] = Counter()
    for obj in gc.get_objects():
        if isinstance(obj, ActorCell):
            kinds["actor cells"] += 1
        elif isinstance(obj, MemoryObjectSendStream | MemoryObjectReceiveStream):
            kinds["memory streams"] += 1
    return kinds


async def snapshot(runner: Runner) -> dict[str, int]:
    import anyio

    await anyio.wait_all_tasks_blocked()  # let done callbacks drop what they refer to
    gc.collect()
    return {
        "rss_kib": vm_rss_kib(),
        "actors": registered_actors(runner),
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        **alive(),
    }


async def fleet(state: Path, runs: int) -> dict[str, Any]:
    import anyio

    from cutter.runner import Runner
    from cutter.states import RunState

    config = file_config(state)
    await file_walk(config, "warm-up")
    async with Runner(config) as runner:
        before = await snapshot(runner)
        start = time.perf_counter()
        paused = await runner.cut_batch([f"doc-{i}" for i in range(runs)])
        cut = time.perf_counter() - start
        states = Counter(sc.state for sc in paused)
        assert states == {RunState.AWAITING_CUT_AUTHORIZATION: runs}, states
        run_ids = [sc.run_id for sc in paused]
        del paused  # the reviewer reads each run back: measure what the runner holds
        at_gate = await snapshot(runner)
        ended: Counter[RunState] = Counter()

        async def review(run_id: str) -> None:
            sc = await approve_and_resume(runner, config, await runner.status(run_id))
            ended[sc.state] += 1

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for run_id in run_ids:
                tg.start_soon(review, run_id)
        review_s = time.perf_counter() - start
    assert ended == {RunState.CLOSEOUT_REPORTED: runs}, ended
    return {
        "runs": runs,
        "cut_s": cut,
        "review_s": review_s,
        "before": before,
        "at_gate": at_gate,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def one_repetition(state: Path, runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "scripts")])}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.fleet", str(state), str(runs)],
        cwd=ROOT / "scripts",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"fleet repetition failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def spread(values: list[float]) -> str:
    """``median (min-max)``, rounded."""
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def run(repetitions: int, quick: bool) -> list[Figure]:
    import anyio

    runs = QUICK_RUNS if quick else RUNS
    with scratch_dir("fleet") as tmp:
        template = Path(tmp) / "template"
        anyio.run(publish, file_config(template), [f"doc-{i}" for i in range(runs)] + ["warm-up"])
        results = []
        for i in range(min(repetitions, REPETITIONS)):
            state = Path(tmp) / f"repetition-{i}"
            shutil.copytree(template, state, copy_function=os.link)  # write-once or replaced
            results.append(one_repetition(state, runs))
            shutil.rmtree(state)
    rates = [r["runs"] / (r["cut_s"] + r["review_s"]) for r in results]
    per_run = [(r["at_gate"]["rss_kib"] - r["before"]["rss_kib"]) / r["runs"] for r in results]
    peak = [r["peak_rss_kib"] / 1024 for r in results]
    cut_share = [r["cut_s"] / (r["cut_s"] + r["review_s"]) * 100 for r in results]

    def counts(key: str) -> str:
        values = sorted({(r["before"].get(key, 0), r["at_gate"].get(key, 0)) for r in results})
        return " / ".join(f"{b} -> {a}" for b, a in values)

    return [
        absolute(
            "fleet",
            "runs/s",
            rates,
            target=">= 100 runs/s",
            limit=100,
            note=(
                f"{runs} runs, dry run, file stores (fsync on), each repetition a fresh "
                f"process: cut_batch to SG_1 ({spread(cut_share)}% of the time), then a "
                "scripted reviewer approves and resumes every run at once through SG_2 to "
                f"closeout; peak RSS {spread(peak)} MiB"
            ),
        ),
        absolute(
            "fleet-rss",
            "KiB",
            per_run,
            target="<= 50 KiB per paused run",
            limit=50,
            higher_is_better=False,
            note=(
                f"(VmRSS with {runs} runs paused at SG_1 - VmRSS before) / {runs}, after "
                "gc.collect(); before -> paused: registered actors "
                f"{counts('actors')}, asyncio tasks {counts('tasks')}, actor cells alive "
                f"{counts('actor cells')}, memory streams alive {counts('memory streams')}, "
                f"threads {counts('threads')}"
            ),
        ),
    ]


def main(argv: list[str]) -> None:
    import anyio

    from cutter.logs import configure_json

    state, runs = Path(argv[1]), int(argv[2])
    with open(os.devnull, "w") as sink:
        configure_json(sink)
        print(json.dumps(anyio.run(fleet, state, runs)))


if __name__ == "__main__":
    main(sys.argv)
