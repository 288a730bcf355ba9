"""End to end: the real daemon as a subprocess, driven only through its socket (with
``cutter.daemon.client.Client`` and ``scripts/approve``) or its stdin/stdout, walking runs
through both sovereign gates to closeout on the embedded SQLite database."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import msgspec
import pytest

from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.protocol import (
    PROTOCOL_VERSION,
    Accepted,
    ApprovalStored,
    Error,
    ListRuns,
    Ping,
    Pong,
    Resume,
    RunInfo,
    RunList,
    RunSummary,
    Start,
    StatusOf,
    decode_reply,
)
from cutter.core.route import PHASES, Gate, Phase
from cutter.core.states import RunState
from tests.daemon._db import consumed_approvals, read, stores, write_lock
from tests.daemon._drive import (
    DOC_ID,
    OPERATOR,
    REVIEWER,
    ROOT,
    SAMPLE_UNITS,
    StdioDaemon,
    WatchedDaemon,
    add_document,
    approval_for,
    approve,
    ask,
    expect,
    expected_kb_docs,
    final_state,
    launch,
    list_runs,
    start_run,
    status,
)
from tests.daemon.conftest import DaemonProcess
from tests.inputs import input_file

pytestmark = pytest.mark.subprocess

APPROVE_SCRIPT = ROOT / "scripts" / "approve"
LIVE = "--enable-execution"


async def _launch(state: Path, daemons: list[DaemonProcess], *args: str) -> WatchedDaemon:
    daemon = await anyio.to_thread.run_sync(functools.partial(launch, state, *args))
    daemons.append(daemon)
    return daemon


def _check_first_stop(run: RunSummary) -> None:
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert run.stop_code == "STOP_APPROVAL_REQUIRED"
    assert run.phases_passed == 5
    assert run.waiting is not None
    assert run.waiting.gate is Gate.SG_1
    assert run.waiting.request_kb_id == f"runs/{run.run_id}/gates/SG_1/request"
    assert (run.waiting.approvals, run.waiting.required_approvals) == (0, 1)


# -- the socket --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_socket_live_walk_through_both_gates_to_closeout(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    daemon = await _launch(state, daemons, LIVE)
    socket = daemon.socket
    assert expect(await ask(socket, Ping(id="p")), Pong) == Pong(id="p", protocol=PROTOCOL_VERSION)

    run = await start_run(socket, Mode.LIVE)
    _check_first_stop(run)
    assert run.mode is Mode.LIVE
    assert run.started_by == OPERATOR
    waiting = expect(
        await ask(socket, ListRuns(state=RunState.AWAITING_CUT_AUTHORIZATION)), RunList
    ).runs
    assert [(r.run_id, r.waiting) for r in waiting] == [(run.run_id, run.waiting)]

    # The starter may not approve their own run; the run stays where it was.
    refused = await ask(socket, approval_for(run, approver=OPERATOR))
    assert isinstance(refused, Error)
    assert refused.code == "APPROVAL_SELF"
    assert await status(socket, run.run_id) == run

    first = await approve(socket, run)
    assert first.approval_kb_id.startswith(f"approvals/{run.run_id}/SG_1-")
    at_sg2 = first.run
    assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    assert at_sg2.phases_passed == 9
    assert at_sg2.waiting is not None
    assert at_sg2.waiting.gate is Gate.SG_2

    # The SG_1 approval, sent again, is consumed already.
    again = await ask(socket, Resume(run_id=run.run_id, approval_kb_id=first.approval_kb_id))
    assert isinstance(again, Error)
    assert again.code == "APPROVAL_CONSUMED_ALREADY"

    done = (await approve(socket, at_sg2)).run
    assert done.state is RunState.CLOSEOUT_REPORTED
    assert (done.stop_code, done.waiting, done.phases_passed) == (None, None, 11)
    assert [r.state for r in await list_runs(socket)] == [RunState.CLOSEOUT_REPORTED]
    assert await anyio.to_thread.run_sync(daemon.stop) == 0

    consumed = [e for e in daemon.logged("approval_consumed") if e["run_id"] == run.run_id]
    assert [e["gate"] for e in consumed] == ["SG_1", "SG_2"]
    assert daemon.logged("daemon_stopped")
    on_disk = await final_state(state, run.run_id)
    final = on_disk.final
    assert final.state is RunState.CLOSEOUT_REPORTED
    assert final.phases_passed == PHASES
    assert len(final.ius) == SAMPLE_UNITS
    assert {row[-1] for row in final.ius} == {"active"}
    assert [entry[1] for entry in final.ledger] == ["CutEnvelope"]
    assert final.source_cut
    assert final.kb_docs == expected_kb_docs(live=True)
    assert len(on_disk.consumed_ids) == 2
    assert on_disk.refusal_codes == ("APPROVAL_CONSUMED_ALREADY", "APPROVAL_SELF")


@pytest.mark.anyio
async def test_socket_dry_run_walks_to_closeout_and_commits_nothing(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    daemon = await _launch(state, daemons)  # execution not enabled

    socket = daemon.socket
    refused = await ask(socket, Start(doc_id=DOC_ID, started_by=OPERATOR, mode=Mode.LIVE))
    assert isinstance(refused, Error)
    assert refused.code == "E_EXECUTION_NOT_AUTHORIZED"
    assert await list_runs(socket) == ()

    run = await start_run(socket, Mode.DRY_RUN)
    _check_first_stop(run)
    run = (await approve(socket, run)).run
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    run = (await approve(socket, run)).run
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert run.mode is Mode.DRY_RUN
    assert await anyio.to_thread.run_sync(daemon.stop) == 0

    on_disk = await final_state(state, run.run_id)
    assert on_disk.final.state is RunState.CLOSEOUT_REPORTED
    assert on_disk.final.phases_passed == PHASES
    assert (on_disk.final.ius, on_disk.final.ledger) == ((), ())
    assert not on_disk.final.source_cut
    assert on_disk.final.kb_docs == expected_kb_docs()
    assert len(on_disk.consumed_ids) == 2


@pytest.mark.anyio
async def test_the_same_decision_sent_twice_is_used_once(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    daemon = await _launch(state, daemons)
    run = await start_run(daemon.socket, Mode.DRY_RUN)
    decision = approval_for(run)
    first = expect(await ask(daemon.socket, decision), ApprovalStored)
    assert (first.replayed, first.run.state) == (False, RunState.AWAITING_LIFECYCLE_AUTHORIZATION)
    again = expect(await ask(daemon.socket, decision), ApprovalStored)
    assert again.replayed
    assert again.approval_kb_id == first.approval_kb_id
    assert again.run == first.run
    # Another reviewer's decision on the same request is another approval: its own id,
    # and (the gate having passed) not used.
    other = await ask(daemon.socket, approval_for(run, approver="reviewer-cy"))
    assert isinstance(other, Error)
    assert other.code == "APPROVAL_WRONG_GATE"
    assert [r.approval_kb_id for r in consumed_approvals(state)] == [first.approval_kb_id]
    assert await anyio.to_thread.run_sync(daemon.stop) == 0


@pytest.mark.anyio
async def test_a_decision_for_a_request_no_longer_open_is_refused_not_re_aimed(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    daemon = await _launch(state, daemons)
    run = await start_run(daemon.socket, Mode.DRY_RUN)
    late = approval_for(run, approver="reviewer-cy", gate=Gate.SG_1)  # cy looks at SG_1
    first = await approve(daemon.socket, run, gate=Gate.SG_1)  # bob decides first
    at_sg2 = first.run
    assert at_sg2.waiting is not None
    assert at_sg2.waiting.gate is Gate.SG_2

    # cy's SG_1 decision arrives while the run waits at SG_2: refused, never re-aimed.
    wrong_gate = expect(await ask(daemon.socket, late), Error)
    assert wrong_gate.code == "APPROVAL_WRONG_GATE"
    assert "waits at SG_2, not SG_1" in wrong_gate.message
    # Nor does naming SG_2 carry the SG_1 request's digest and nonce through.
    relabelled = msgspec.structs.replace(late, gate=Gate.SG_2, review_decision_id="review-1")
    stale = expect(await ask(daemon.socket, relabelled), Error)
    assert stale.code == "APPROVAL_STALE"
    # Nor a decision on SG_2's digest from an earlier opening of the gate (another nonce).
    old_nonce = msgspec.structs.replace(
        approval_for(at_sg2, gate=Gate.SG_2), nonce=run.waiting.nonce if run.waiting else ""
    )
    assert expect(await ask(daemon.socket, old_nonce), Error).code == "APPROVAL_STALE"
    assert await status(daemon.socket, run.run_id) == at_sg2

    # bob's exact retry of the decision the run consumed is still the same decision.
    retry = expect(await ask(daemon.socket, approval_for(run, gate=Gate.SG_1)), ApprovalStored)
    assert (retry.replayed, retry.approval_kb_id) == (True, first.approval_kb_id)
    assert await anyio.to_thread.run_sync(daemon.stop) == 0

    # Nothing was stored for the refused decisions: no approval, no refusal doc.
    async with stores(state) as config:
        approvals = await config.kb.list(f"approvals/{run.run_id}")
        refusals = await config.kb.list(f"runs/{run.run_id}/refusals")
    assert approvals == [first.approval_kb_id]
    assert refusals == []
    assert [r.approval_kb_id for r in consumed_approvals(state)] == [first.approval_kb_id]


@pytest.mark.anyio
async def test_socket_reject_at_sg2_rolls_the_live_writes_back(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    daemon = await _launch(state, daemons, LIVE)
    run = await start_run(daemon.socket)
    run = (await approve(daemon.socket, run)).run
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    run = (await approve(daemon.socket, run, decision=Decision.REJECT)).run
    assert run.state is RunState.REJECTED
    assert run.stop_code == "STOP_APPROVAL_REJECTED"
    assert await anyio.to_thread.run_sync(daemon.stop) == 0

    on_disk = await final_state(state, run.run_id)
    assert on_disk.final.ius == ()  # the backup held no rows
    assert [entry[1] for entry in on_disk.final.ledger] == ["CutEnvelope", "RollbackEnvelope"]
    assert not on_disk.final.source_cut
    anchors = {d for d in on_disk.final.kb_docs if d[1] == "LedgerAnchor"}
    assert anchors == {
        ("ledger-anchors/<run>/cut", "LedgerAnchor"),
        ("ledger-anchors/<run>/rollback", "LedgerAnchor"),
    }


@pytest.mark.anyio
async def test_approve_script_releases_both_gates(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    input_file(APPROVE_SCRIPT)
    state = tmp_path / "state"
    add_document(state_dir=state)
    daemon = await _launch(state, daemons, LIVE)
    run = await start_run(daemon.socket)
    for gate, after in (
        (Gate.SG_1, RunState.AWAITING_LIFECYCLE_AUTHORIZATION),
        (Gate.SG_2, RunState.CLOSEOUT_REPORTED),
    ):
        assert run.waiting is not None
        args = [run.run_id, "--gate", gate.value, "--approver", REVIEWER]
        args += ["--request-digest", run.waiting.request_digest, "--reason", "plan checked"]
        if gate is Gate.SG_2:
            args += ["--review-decision-id", f"review-{run.run_id}"]
        done = await anyio.to_thread.run_sync(
            functools.partial(_run_approve_script, *args, "--socket", str(daemon.socket), "--json")
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        stored = expect(decode_reply(done.stdout.strip().splitlines()[-1]), ApprovalStored)
        assert stored.approval_kb_id.startswith(f"approvals/{run.run_id}/{gate.value}-")
        assert stored.run.state is after
        run = await status(daemon.socket, run.run_id)
        assert run.state is after
    assert await anyio.to_thread.run_sync(daemon.stop) == 0
    on_disk = await final_state(state, run.run_id)
    assert on_disk.final.kb_docs == expected_kb_docs(live=True)
    assert len(on_disk.consumed_ids) == 2


def _run_approve_script(*args: str) -> subprocess.CompletedProcess[bytes]:
    # With this interpreter: the script's "#!/usr/bin/env python3" may find one
    # without the project's dependencies.
    return subprocess.run(
        [sys.executable, str(APPROVE_SCRIPT), *args],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


# -- stdin/stdout ------------------------------------------------------------------------


@contextlib.contextmanager
def stdio_daemon(state: Path, *args: str) -> Iterator[StdioDaemon]:
    daemon = StdioDaemon(state, *args)
    try:
        yield daemon
    finally:
        daemon.close()


def test_stdio_live_walk_to_closeout(tmp_path: Path) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    with stdio_daemon(state, LIVE) as daemon:
        assert expect(daemon.request(Ping(id="1")), Pong).id == "1"
        # A malformed frame gets an Error, and the daemon keeps serving.
        daemon.send_raw(b"{not json\n")
        bad = expect(daemon.receive(), Error)
        assert bad.code == "E_BAD_FRAME"
        daemon.send_raw(b'{"v": 99, "cmd": "ping"}\n')
        assert expect(daemon.receive(), Error).code == "E_PROTOCOL_VERSION"

        start = Start(id="2", doc_id=DOC_ID, started_by=OPERATOR, mode=Mode.LIVE)
        run = expect(daemon.request(start), RunInfo).run
        _check_first_stop(run)
        stored = expect(daemon.request(approval_for(run)), ApprovalStored)
        assert stored.run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        stored = expect(daemon.request(approval_for(stored.run)), ApprovalStored)
        assert stored.run.state is RunState.CLOSEOUT_REPORTED
        listed = expect(daemon.request(ListRuns(id="3")), RunList).runs
        assert [(r.run_id, r.state) for r in listed] == [(run.run_id, RunState.CLOSEOUT_REPORTED)]
        assert daemon.close() == 0
    (started,) = daemon.logged("daemon_started")
    assert started["transport"] == "stdio"
    assert daemon.logged("daemon_stopped")

    on_disk = anyio.run(final_state, state, run.run_id)
    assert on_disk.final.state is RunState.CLOSEOUT_REPORTED
    assert len(on_disk.final.ius) == SAMPLE_UNITS
    assert {row[-1] for row in on_disk.final.ius} == {"active"}
    assert on_disk.final.kb_docs == expected_kb_docs(live=True)
    assert len(on_disk.consumed_ids) == 2


def test_stdio_end_of_input_drains_a_walk_and_a_restart_continues_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    with stdio_daemon(state, LIVE) as daemon:
        start = Start(doc_id=DOC_ID, started_by=OPERATOR, mode=Mode.LIVE)
        run = expect(daemon.request(start), RunInfo).run
        stored = expect(daemon.request(approval_for(run, resume=False)), ApprovalStored)
        assert stored.run.state is RunState.AWAITING_CUT_AUTHORIZATION
        resume = Resume(run_id=run.run_id, approval_kb_id=stored.approval_kb_id, wait=False)
        # Hold the walk at its first durable write (the approval's consumption with
        # the run's advance): another process holds the database's write lock.
        with write_lock(state):
            assert expect(daemon.request(resume), Accepted).run_id == run.run_id
            daemon.close_stdin()  # end of input while the walk waits on the database
            daemon.wait_named("daemon_draining")
        assert daemon.close() == 0
    paused = daemon.logged("walk_paused")
    assert [(e["run_id"], e["phase"]) for e in paused] == [(run.run_id, "cut_leg_a")]

    sidecar = read(state, lambda c: c.run_store.load(run.run_id))
    assert sidecar.state is RunState.RUNNING
    assert sidecar.phases_passed == PHASES[: PHASES.index(Phase.CUT_LEG_A)]
    assert sidecar.approvals_used == {stored.approval_kb_id}

    with stdio_daemon(state, LIVE) as daemon:
        assert daemon.wait_named("run_recovering")["run_id"] == run.run_id
        daemon.wait_stopped(run.run_id)
        run = expect(daemon.request(StatusOf(run_id=run.run_id)), RunInfo).run
        assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        stored = expect(daemon.request(approval_for(run)), ApprovalStored)
        assert stored.run.state is RunState.CLOSEOUT_REPORTED
        assert daemon.close() == 0
    on_disk = anyio.run(final_state, state, run.run_id)
    assert len(on_disk.final.ius) == SAMPLE_UNITS
    assert on_disk.final.kb_docs == expected_kb_docs(live=True)
    assert len(on_disk.consumed_ids) == 2
