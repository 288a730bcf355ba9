"""1,000 concurrent runs to closeout in one process, both gates approved by a
scripted reviewer, on the embedded stores (fsync on); the CPU each run costs, as
a multiple of one in-memory walk's; and the live memory each run holds while it
waits at SG_1.

Each repetition is a fresh subprocess (``python -m benchmarks.fleet STATE RUNS``)
on a fresh state directory, a copy of one template holding the published
documents (a copy, not hard links: a database file is written in place), so its
figures are its own. In it: one warm-up walk on the embedded
stores and ``MEMORY_WALKS`` dry walks on fresh in-memory stores (the CPU floor),
then ``cut_batch`` of every document (all paused at SG_1), then a reviewer that
reads each run, approves and resumes it through SG_2 to closeout, all runs at
once. Rate: runs over the cut and the review time; CPU: ``process_time`` (every
thread) over the same span, per run. Then, with ``tracemalloc`` on (it slows
allocation, so only now), ``cut_batch`` of as many other documents: the live
bytes traced after it, with every run paused and the collector run, over the
runs; the top allocation sites say what a paused run holds. Log events are
rendered as JSON into /dev/null, as a daemon writes them to a file, so they cost
their rendering but are not held in memory.
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
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import ROOT, Figure, absolute, compared, embedded, scratch_dir
from benchmarks.embedded import publish_all
from benchmarks.walk import approve_and_resume, one_walk, walk_once

if TYPE_CHECKING:
    from cutter.walk.runner import Runner

RUNS = 1000
QUICK_RUNS = 150  # --quick: the figure's shape within the minute; the full run is 1,000
REPETITIONS = 5  # at most: a repetition of 1,000 runs takes most of a minute
MEMORY_WALKS = 5  # in-memory walks per repetition, for the CPU floor
TOP = 8  # allocation sites reported for the paused runs
FRAMES = 12  # traceback depth tracemalloc keeps, to find the cutter/actors frame


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
    """Actor cells and mailboxes still alive anywhere, per the collector."""
    from actors.cell import ActorCell
    from actors.mailbox import Mailbox

    kinds: Counter[str] = Counter()
    for obj in gc.get_objects():
        if isinstance(obj, ActorCell):
            kinds["actor cells"] += 1
        elif isinstance(obj, Mailbox):
            kinds["mailboxes"] += 1
    return kinds


async def snapshot(runner: Runner) -> dict[str, int]:
    import anyio

    await anyio.wait_all_tasks_blocked()  # let done callbacks drop what they refer to
    gc.collect()
    return {
        "rss_kib": vm_rss_kib(),
        "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0,
        "actors": registered_actors(runner),
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
        **alive(),
    }


def site(trace: tracemalloc.Statistic) -> str:
    """Where an allocation was made: the innermost frame in this project's code
    (``actors/`` or ``cutter/``) and the innermost frame itself, if they differ."""
    frames = list(reversed(trace.traceback))  # most recent call first
    ours = next((f for f in frames if "/cutter/" in f.filename or "/actors/" in f.filename), None)

    def short(frame: tracemalloc.Frame) -> str:
        parts = Path(frame.filename).parts
        return f"{'/'.join(parts[-2:])}:{frame.lineno}"

    inner = short(frames[0])
    return inner if ours is None or ours is frames[0] else f"{short(ours)} ({inner})"


async def fleet(state: Path, runs: int) -> dict[str, Any]:
    import anyio

    from cutter.core.states import RunState
    from cutter.walk.runner import Runner

    async with embedded(state) as config:
        await walk_once(config, "warm-up")
        await one_walk()  # warm up
        memory_walk_cpu = statistics.median([(await one_walk()).cpu for _ in range(MEMORY_WALKS)])
        async with Runner(config) as runner:
            before = await snapshot(runner)
            start, start_cpu = time.perf_counter(), time.process_time()
            paused = await runner.cut_batch([f"doc-{i}" for i in range(runs)])
            cut = time.perf_counter() - start
            states = Counter(sc.state for sc in paused)
            assert states == {RunState.AWAITING_CUT_AUTHORIZATION: runs}, states
            run_ids = [sc.run_id for sc in paused]
            del paused  # the reviewer reads each run back
            ended: Counter[RunState] = Counter()

            async def review(run_id: str) -> None:
                sc = await approve_and_resume(runner, config, await runner.status(run_id))
                ended[sc.state] += 1

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for run_id in run_ids:
                    tg.start_soon(review, run_id)
            review_s = time.perf_counter() - start
            cpu_s = time.process_time() - start_cpu
            assert ended == {RunState.CLOSEOUT_REPORTED: runs}, ended
            del run_ids

            # What a paused run holds: only allocations made from here on are traced.
            settled = await snapshot(runner)
            tracemalloc.start(FRAMES)
            traced_before = tracemalloc.get_traced_memory()[0]
            paused = await runner.cut_batch([f"held-{i}" for i in range(runs)])
            assert len(paused) == runs
            del paused  # what the caller got back is not what the runner holds
            at_gate = await snapshot(runner)
            held = tracemalloc.take_snapshot().statistics("traceback")
            tracemalloc.stop()
    top = [{"site": site(stat), "bytes": stat.size, "blocks": stat.count} for stat in held[:TOP]]
    return {
        "runs": runs,
        "cut_s": cut,
        "review_s": review_s,
        "cpu_s": cpu_s,
        "memory_walk_cpu_s": memory_walk_cpu,
        "held_bytes": at_gate["traced"] - traced_before,
        "top": top,
        "before": before,
        "settled": settled,
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
    docs = [f"doc-{i}" for i in range(runs)] + [f"held-{i}" for i in range(runs)] + ["warm-up"]

    async def template_of(template: Path) -> None:
        async with embedded(template) as config:
            await publish_all(config, docs)

    with scratch_dir("fleet") as tmp:
        template = Path(tmp) / "template"
        anyio.run(template_of, template)
        results = []
        for i in range(min(repetitions, REPETITIONS)):
            state = Path(tmp) / f"repetition-{i}"
            shutil.copytree(template, state)  # a copy: a database file is written in place
            results.append(one_repetition(state, runs))
            shutil.rmtree(state)
    spans = [r["cut_s"] + r["review_s"] for r in results]
    rates = [r["runs"] / span for r, span in zip(results, spans, strict=True)]
    cpu_ms = [r["cpu_s"] / r["runs"] * 1e3 for r in results]
    walk_ms = [r["memory_walk_cpu_s"] * 1e3 for r in results]
    held_kib = [r["held_bytes"] / r["runs"] / 1024 for r in results]
    peak = [r["peak_rss_kib"] / 1024 for r in results]
    cut_share = [r["cut_s"] / span * 100 for r, span in zip(results, spans, strict=True)]
    size = f"{runs:,} runs" + (f" (--quick; the target is for {RUNS:,})" if quick else "")
    median_result = sorted(results, key=lambda r: r["held_bytes"])[len(results) // 2]
    holders = "; ".join(
        f"{t['site']} {t['bytes'] / 1024:.1f} KiB in {t['blocks']} blocks"
        for t in median_result["top"]
    )

    def counts(key: str) -> str:
        values = sorted({(r["settled"].get(key, 0), r["at_gate"].get(key, 0)) for r in results})
        return " / ".join(f"{b} -> {a}" for b, a in values)

    return [
        absolute(
            "fleet",
            "runs/s",
            rates,
            target=">= 100 runs/s",
            limit=100,
            note=(
                f"{size}, dry run, embedded stores (fsync on), each repetition a fresh "
                f"process: cut_batch to SG_1 ({spread(cut_share)}% of the time), then a "
                "scripted reviewer approves and resumes every run at once through SG_2 to "
                f"closeout; peak RSS {spread(peak)} MiB"
            ),
            cpu=[r["runs"] / r["cpu_s"] for r in results],
        ),
        compared(
            "fleet-cpu",
            "ms",
            cpu_ms,
            walk_ms,
            target="<= 2.5 in-memory walks of CPU per run",
            limit=2.5,
            note=(
                f"{size}: process CPU time (every thread) over the cut and the review, per "
                "run, beside the CPU of one dry walk on fresh in-memory stores (same "
                f"process, median of {MEMORY_WALKS})"
            ),
            cpu=cpu_ms,
            floor_cpu=walk_ms,
        ),
        absolute(
            "fleet-mem",
            "KiB",
            held_kib,
            target="<= 8 KiB live per paused run",
            limit=8,
            higher_is_better=False,
            note=(
                f"{size}: bytes tracemalloc traces alive after cut_batch of {runs:,} more "
                "runs, all paused at SG_1 (gc.collect() run), / runs; the largest sites of "
                f"the median repetition (a few blocks are a table's growth, not a run's): "
                f"{holders}; after the review -> paused: registered actors "
                f"{counts('actors')}, asyncio tasks {counts('tasks')}, actor cells alive "
                f"{counts('actor cells')}, mailboxes alive {counts('mailboxes')}, "
                f"threads {counts('threads')}"
            ),
        ),
    ]


def main(argv: list[str]) -> None:
    import anyio

    from cutter.runtime.logs import configure_json

    state, runs = Path(argv[1]), int(argv[2])
    with open(os.devnull, "w") as sink:
        configure_json(sink)
        print(json.dumps(anyio.run(fleet, state, runs)))


if __name__ == "__main__":
    main(sys.argv)
