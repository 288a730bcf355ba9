"""Load through one real daemon: many runs at once, and watchers that cannot keep up.

Every run here is driven by scripted clients over the daemon's socket, each on
its own connection, all at once. Wall times are printed (``-s`` shows them) and
never asserted: performance is the benchmark script's business.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cutter import Mode, RunState
from cutter.core.kbdocs import Decision
from cutter.core.ledger import CutEnvelope
from cutter.core.protocol import (
    MAX_FRAME_BYTES,
    ApprovalStored,
    Error,
    Event,
    ListRuns,
    Ping,
    Pong,
    RunInfo,
    RunList,
    RunSummary,
    Start,
    SubmitApproval,
    Watch,
    decode_reply,
    encode,
)
from cutter.core.records import IUState
from cutter.core.route import Gate
from cutter.daemon.client import Client
from cutter.runtime.logs import TRANSITION_EVENTS
from cutter.stores.sqlite.target import SqliteLedger, SqliteSources
from cutter.walk.runner import RunnerConfig
from tests.daemon._db import Consumed, consumed_approvals, query, stores
from tests.daemon.conftest import ROOT, DaemonProcess, start_daemon

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

SAMPLE = ROOT / "cutter" / "samples" / "garden-charter.md"
OPERATOR = "operator-ann"
REVIEWER = "reviewer-bob"
GUARD = 240  # seconds: only so a hung daemon fails the test instead of the suite


async def add_documents(state_dir: Path, doc_ids: list[str]) -> None:
    """The first through ``cutter add-document`` (the operator's way), the rest in
    process through the same store, which is what that command does, minus a
    Python start-up per document. Every document holds the same bytes."""
    first, *rest = doc_ids
    command = ["add-document", "--state-dir", str(state_dir), first, str(SAMPLE)]
    await anyio.run_process([sys.executable, "-m", "cutter", *command], cwd=ROOT)
    data = SAMPLE.read_bytes()
    async with stores(state_dir) as config:
        sources = config.target.sources
        assert isinstance(sources, SqliteSources)
        for doc_id in rest:
            await sources.publish(doc_id, data)


async def walk_to_closeout(socket: Path, doc_id: str, mode: Mode = Mode.DRY_RUN) -> RunSummary:
    """One scripted operator and reviewer on one connection: start, approve both gates."""
    async with Client(socket) as client:
        reply = await client.request(
            Start(id=f"start-{doc_id}", doc_id=doc_id, started_by=OPERATOR, mode=mode)
        )
        assert isinstance(reply, RunInfo), reply
        run = reply.run
        for gate in (Gate.SG_1, Gate.SG_2):
            assert run.waiting is not None, run
            assert run.waiting.gate is gate, run
            reply = await client.request(
                SubmitApproval(
                    id=f"{gate.value}-{doc_id}",
                    run_id=run.run_id,
                    gate=gate,
                    request_digest=run.waiting.request_digest,
                    nonce=run.waiting.nonce,
                    decision=Decision.APPROVE,
                    approver=REVIEWER,
                    reason="scripted review: plan matches the source",
                    review_decision_id=f"review-{run.run_id}" if gate is Gate.SG_2 else None,
                )
            )
            assert isinstance(reply, ApprovalStored), reply
            assert reply.id == f"{gate.value}-{doc_id}"
            run = reply.run
        return run


async def walk_all(socket: Path, doc_ids: list[str], mode: Mode) -> dict[str, RunSummary]:
    """Every document's run at once, each driven by its own task and connection."""
    finished: dict[str, RunSummary] = {}

    async def one(doc_id: str) -> None:
        finished[doc_id] = await walk_to_closeout(socket, doc_id, mode)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            for doc_id in doc_ids:
                tg.start_soon(one, doc_id)
    return finished


async def list_runs(socket: Path) -> list[RunSummary]:
    """Every run, following the pages of ``runs`` (100 a page)."""
    runs: list[RunSummary] = []
    cursor: str | None = None
    async with Client(socket) as client:
        while True:
            reply = await client.request(ListRuns(cursor=cursor))
            assert isinstance(reply, RunList), reply
            runs += reply.runs
            cursor = reply.next_cursor
            if cursor is None:
                return runs


def consumed_records(state_dir: Path) -> list[Consumed]:
    """The daemon's consumed approvals: one row per consumption."""
    return consumed_approvals(state_dir)


def assert_all_closed_out(runs: list[RunSummary], doc_ids: list[str], mode: Mode) -> None:
    assert sorted(r.doc_id for r in runs) == sorted(doc_ids)  # one run per document
    for run in runs:
        assert run.state is RunState.CLOSEOUT_REPORTED, run
        assert run.mode is mode
        assert run.phases_passed == 11
        assert run.stop_code is None
        assert run.waiting is None


async def test_200_concurrent_runs_reach_closeout(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    n = 200
    state_dir = tmp_path / "state"
    doc_ids = [f"doc-load-{i:03d}" for i in range(n)]
    await add_documents(state_dir, doc_ids)
    daemon = start_daemon(state_dir)
    daemons.append(daemon)

    began = time.perf_counter()
    finished = await walk_all(daemon.socket, doc_ids, Mode.DRY_RUN)
    wall = time.perf_counter() - began
    print(f"\n{n} DRY_RUN runs, 3 commands each on {n} concurrent connections: {wall:.1f} s")

    assert all(run.state is RunState.CLOSEOUT_REPORTED for run in finished.values())
    runs = await list_runs(daemon.socket)
    assert_all_closed_out(runs, doc_ids, Mode.DRY_RUN)
    assert {r.run_id for r in runs} == {r.run_id for r in finished.values()}
    assert len(consumed_records(state_dir)) == 2 * n
    assert daemon.stop() == 0
    consumed = daemon.named("approval_consumed")
    assert len(consumed) == 2 * n
    assert len({str(e["approval_kb_id"]) for e in consumed}) == 2 * n
    assert sorted(e["gate"] for e in consumed) == ["SG_1"] * n + ["SG_2"] * n
    # a dry run commits nothing to the target
    assert query(state_dir, "SELECT count(*) FROM ius") == [(0,)]
    assert query(state_dir, "SELECT count(*) FROM ledger") == [(0,)]


async def test_20_concurrent_live_runs_reach_closeout(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    n = 20
    state_dir = tmp_path / "state"
    doc_ids = [f"doc-live-{i:02d}" for i in range(n)]
    await add_documents(state_dir, doc_ids)
    daemon = start_daemon(state_dir, "--enable-execution")
    daemons.append(daemon)

    began = time.perf_counter()
    finished = await walk_all(daemon.socket, doc_ids, Mode.LIVE)
    print(f"\n{n} LIVE runs on {n} concurrent connections: {time.perf_counter() - began:.1f} s")

    runs = await list_runs(daemon.socket)
    assert_all_closed_out(runs, doc_ids, Mode.LIVE)
    assert len(consumed_records(state_dir)) == 2 * n
    assert daemon.stop() == 0

    # each document's rows are written once and active, its version marked cut
    async with stores(state_dir) as config:
        await _check_live_cuts(config, doc_ids, finished)


async def _check_live_cuts(
    config: RunnerConfig, doc_ids: list[str], finished: dict[str, RunSummary]
) -> None:
    ius, sources, ledger = config.target.ius, config.target.sources, config.target.ledger
    assert isinstance(ledger, SqliteLedger)
    assert isinstance(sources, SqliteSources)
    entries = await ledger.entries()
    await ledger.verify()
    cuts = [e.envelope for e in entries if isinstance(e.envelope, CutEnvelope)]
    assert sorted(c.doc_id for c in cuts) == sorted(doc_ids)
    by_doc = {c.doc_id: c for c in cuts}
    for doc_id in doc_ids:
        run = finished[doc_id]
        rows = await ius.rows(doc_id)
        cut = by_doc[doc_id]
        assert cut.run_id == run.run_id
        assert len(rows) == cut.iu_count > 0
        assert {r.state for r in rows} == {IUState.ACTIVE}
        assert {r.change_set_id for r in rows} == {cut.change_set_id}
        version = await sources.current(doc_id)
        assert await sources.cut_by(version.sv_id) == cut.change_set_id


# --- watchers -------------------------------------------------------------------
WATCHED_RUNS = 40  # ~30 transition events a run: several times what a stalled watcher holds


async def _stalled_watcher_and_runs(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> tuple[DaemonProcess, SocketStream, list[str]]:
    """A daemon, a watcher that read one event and then stopped reading (left
    open), one that vanished, and WATCHED_RUNS runs walked to closeout meanwhile."""
    state_dir = tmp_path / "state"
    doc_ids = [f"doc-watch-{i:02d}" for i in range(WATCHED_RUNS)]
    await add_documents(state_dir, doc_ids)
    daemon = start_daemon(state_dir)
    daemons.append(daemon)

    stalled = await anyio.connect_unix(daemon.socket)
    await stalled.send(encode(Watch(id="stalled")))
    vanished = await anyio.connect_unix(daemon.socket)
    await vanished.send(encode(Watch(id="vanished")))
    await vanished.aclose()

    # The stalled watcher is subscribed once it has seen an event: the first run's.
    first, *rest = doc_ids
    with anyio.fail_after(GUARD):
        finished = [await walk_to_closeout(daemon.socket, first)]
        reader = BufferedByteReceiveStream(stalled)
        seen = decode_reply(await reader.receive_until(b"\n", MAX_FRAME_BYTES))
    assert isinstance(seen, Event), seen
    assert seen.id == "stalled"

    # From here on nobody reads it.
    finished += (await walk_all(daemon.socket, rest, Mode.DRY_RUN)).values()
    assert all(run.state is RunState.CLOSEOUT_REPORTED for run in finished)
    assert_all_closed_out(await list_runs(daemon.socket), doc_ids, Mode.DRY_RUN)
    async with Client(daemon.socket) as client:
        assert isinstance(await client.request(Ping(id="after")), Pong)
    return daemon, stalled, doc_ids


async def test_a_stalled_or_vanished_watcher_never_blocks_a_run(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    daemon, stalled, _ = await _stalled_watcher_and_runs(tmp_path, daemons)
    # The stalled watcher, when it finally reads, finds a bounded backlog, is
    # told it lagged, and its connection is closed.
    events = 0
    reader = BufferedByteReceiveStream(stalled)
    with anyio.fail_after(GUARD):
        while True:
            reply = decode_reply(await reader.receive_until(b"\n", MAX_FRAME_BYTES))
            if not isinstance(reply, Event):
                break
            events += 1
        assert isinstance(reply, Error), reply
        assert reply.code == "E_WATCH_LAGGED"
        assert reply.id == "stalled"
        with pytest.raises((anyio.EndOfStream, anyio.IncompleteRead)):
            await reader.receive_until(b"\n", MAX_FRAME_BYTES)
    await stalled.aclose()
    assert daemon.stop() == 0
    transitions = [e for e in daemon.events if e.get("event") in TRANSITION_EVENTS]
    assert 0 < events < len(transitions)
    dropped = daemon.named("watcher_dropped")
    assert [(e["reason"], e["run_id"]) for e in dropped] == [("lagged", None)]


async def test_a_lagging_watcher_is_logged_when_it_is_dropped(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """The drop is logged when the daemon drops the watcher, not only once the
    stalled client reads its backlog or goes away (it may never do either)."""
    daemon, stalled, _ = await _stalled_watcher_and_runs(tmp_path, daemons)
    # Every line the daemon logged before answering the ping above is in the pipe:
    # kill it (no shutdown path runs) and read them all.
    daemon.kill()
    await stalled.aclose()
    dropped = daemon.named("watcher_dropped")
    assert [(e["reason"], e["run_id"]) for e in dropped] == [("lagged", None)]
