"""A document being planned does not hold the event loop, and an oversized one is refused.

The discoverer here is a seam that blocks in its worker thread until the test
releases it (a ``threading.Event``, never a timer): while it is held, the daemon
answers ``ping`` and lists runs, which it could not do if discovery ran on the
event loop. ``GUARD`` only bounds how long a broken build blocks before the test
fails; nothing is timed.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_process
import pytest
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.core.doc_size import MAX_DOCUMENT_BYTES
from cutter.core.errors import DocumentTooLarge, StopCode
from cutter.core.principals import Caller
from cutter.core.protocol import ListRuns, Ping, Pong, RunList
from cutter.core.records import Candidate
from cutter.core.sidecar import Sidecar
from cutter.core.state_dir import StateDir
from cutter.core.states import RunState
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.discovery import TextDiscoverer
from cutter.runtime.offloop import (
    CPU_WORKERS,
    cpu_limiter,
    discover_off_loop,
    explain_off_loop,
    off_loop,
    use_worker_processes,
)
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.memory.target import InMemorySources
from cutter.stores.sqlite.database import open_database
from cutter.stores.sqlite.target import SqliteSources
from tests._harness import DOC_ID, OPERATOR, build_runner

ROOT = Path(__file__).resolve().parents[1]
GUARD = 15.0  # seconds a held discoverer waits before giving up (a broken build)
ROOT_CALLER = Caller("root", "test")


class HeldDiscoverer(InMemoryDiscoverer):
    """Discovery that signals it started, then blocks until ``release`` is set."""

    def __init__(self, source: bytes, candidates: Sequence[Candidate]) -> None:
        super().__init__(source, candidates)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released_in_time: list[bool] = []
        self.threads: list[int] = []

    def discover(self, data: bytes) -> Sequence[Candidate]:
        self.threads.append(threading.get_ident())
        self.entered.set()
        self.released_in_time.append(self.release.wait(GUARD))
        return super().discover(data)


def held(n_candidates: int = 12) -> HeldDiscoverer:
    seeded = InMemoryDiscoverer.seeded(n_candidates)
    return HeldDiscoverer(seeded.source, seeded.candidates)


@pytest.mark.anyio
async def test_the_daemon_answers_while_a_document_is_being_planned(tmp_path: Path) -> None:
    disc = held()
    rig = build_runner(tmp_path, disc=disc)
    walked: list[Sidecar] = []
    done = anyio.Event()
    async with rig.runner, anyio.create_task_group() as jobs:
        daemon = Daemon(rig.runner, rig.kill_switch, EventBus(), jobs, owner="root")

        async def walk() -> None:
            walked.append(await rig.runner.cut(DOC_ID, started_by=OPERATOR))
            done.set()

        jobs.start_soon(walk)
        assert await anyio.to_thread.run_sync(disc.entered.wait, GUARD)
        # Discovery is running (blocked) now; the loop must still serve.
        assert isinstance(await daemon.handle(Ping(), ROOT_CALLER), Pong)
        listed = await daemon.handle(ListRuns(), ROOT_CALLER)
        assert isinstance(listed, RunList)
        assert [run.state for run in listed.runs] == [RunState.RUNNING]
        assert not disc.release.is_set()
        assert walked == []
        disc.release.set()
        with anyio.fail_after(GUARD):
            await done.wait()
        jobs.cancel_scope.cancel()
    # Mark and cutplan each ran discovery once, in a worker thread, released by the test.
    assert disc.released_in_time == [True, True]
    assert threading.get_ident() not in disc.threads
    assert walked[0].state is RunState.AWAITING_CUT_AUTHORIZATION


@pytest.mark.anyio
async def test_cpu_work_runs_at_most_cpu_workers_at_once() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def work() -> int:
        started.release()
        return int(release.wait(GUARD))

    results: list[int] = []
    async with anyio.create_task_group() as tg:
        for _ in range(CPU_WORKERS + 1):
            tg.start_soon(lambda: _collect(results, off_loop(work)))
        for _ in range(CPU_WORKERS):
            assert await anyio.to_thread.run_sync(started.acquire, True, GUARD)
        await anyio.wait_all_tasks_blocked()
        limiter = cpu_limiter()
        assert limiter.borrowed_tokens == CPU_WORKERS
        assert limiter.statistics().tasks_waiting == 1  # the third queues, no new thread
        release.set()
    assert results == [1] * (CPU_WORKERS + 1)


async def _collect(into: list[int], work: object) -> None:
    into.append(await work)  # type: ignore[misc]


@pytest.mark.anyio
async def test_a_store_refuses_a_document_over_the_limit_and_stores_nothing(
    tmp_path: Path,
) -> None:
    async with open_database(StateDir(tmp_path).database) as db:
        sources = SqliteSources(db)
        with pytest.raises(DocumentTooLarge) as refused:
            await sources.publish("big-doc", b"x" * (MAX_DOCUMENT_BYTES + 1))
        assert refused.value.code == "E_DOCUMENT_TOO_LARGE"
        assert (
            db.all("SELECT doc_id FROM documents UNION ALL SELECT sv_id FROM source_versions") == []
        )
        version = await sources.publish("doc-at-limit", b"x" * MAX_DOCUMENT_BYTES)
        assert version.size == MAX_DOCUMENT_BYTES


@pytest.mark.subprocess
def test_add_document_and_plan_refuse_an_oversized_file_in_one_line(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as file:  # sparse: the refusal must come before reading it
        file.truncate(MAX_DOCUMENT_BYTES + 1)
    state = tmp_path / "state"
    command = ["add-document", "--state-dir", str(state), "doc", str(big)]
    added = subprocess.run(
        [sys.executable, "-m", "cutter", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert added.returncode == 1
    output = added.stdout + added.stderr
    assert "E_DOCUMENT_TOO_LARGE" in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1
    assert not StateDir(state).database.exists()  # refused before the store was opened
    planned = CliRunner().invoke(main, ["plan", str(big)])
    assert planned.exit_code == 1
    assert "E_DOCUMENT_TOO_LARGE" in planned.output


@pytest.mark.anyio
async def test_a_stored_version_over_the_limit_stops_at_source_pin_unread(tmp_path: Path) -> None:
    sources = InMemorySources()  # as a store written before the limit, or by another tool
    disc = InMemoryDiscoverer.seeded()
    sources.seed(DOC_ID, b"x" * (MAX_DOCUMENT_BYTES + 1), sv_id="sv-big")
    rig = build_runner(tmp_path, disc=disc, sources=sources)
    async with rig.runner:
        sidecar = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
    assert sidecar.state is RunState.FAILED
    assert sidecar.stop_code == StopCode.DOCUMENT_TOO_LARGE
    assert sidecar.phases_passed == ()
    assert disc.calls == 0


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_discovery_in_a_worker_process_is_the_same_cut() -> None:
    """The daemon's path (``use_worker_processes``): the cut and the warnings come back
    from the worker process equal to the cut in this one."""
    data = (ROOT / "tests" / "corpus" / "fr-constitution-1958.txt").read_bytes()
    here = TextDiscoverer().explain(data)
    use_worker_processes()
    there = await explain_off_loop(TextDiscoverer(), data)
    assert there == here
    assert here.warnings  # this edition repeats and skips numbers: warnings travel too
    assert await discover_off_loop(TextDiscoverer(), data) == here.candidates


@pytest.mark.anyio
async def test_small_work_stays_on_the_loop_and_large_work_leaves_it() -> None:
    from cutter.runtime.offloop import ON_LOOP_BYTES, off_loop

    here = threading.get_ident()
    assert await off_loop(threading.get_ident, size=ON_LOOP_BYTES) == here
    assert await off_loop(threading.get_ident, size=ON_LOOP_BYTES + 1) != here
    assert await off_loop(threading.get_ident) != here  # no size: its cost is not known


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_the_daemon_discovers_even_a_small_document_in_a_worker_process() -> None:
    from cutter.discovery import TextDiscoverer
    from cutter.runtime.offloop import explain_off_loop, use_worker_processes

    calls: list[object] = []
    real = anyio.to_process.run_sync

    async def counted(func: object, *args: object, **kwargs: object) -> object:
        calls.append(func)
        return await real(func, *args, **kwargs)  # type: ignore[arg-type]

    use_worker_processes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(anyio.to_process, "run_sync", counted)
        found = await explain_off_loop(
            TextDiscoverer(), b"Article 1\n\nText.\n\nArticle 2\n\nMore.\n"
        )
    assert found is not None
    assert len(calls) == 1
