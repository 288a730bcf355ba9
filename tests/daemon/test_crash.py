"""Crash and restart of the real daemon on the embedded SQLite database.

Every failpoint of a LIVE walk (each phase's ``before:``/``after:``, ``leg_a:mid``,
``leg_a:written``, ``leg_b:appended``, ``enact:mid``, and an approval's
``consume:committed`` at each gate: the approval consumed and the advanced run
saved in one committed transaction, the reviewer not yet answered) makes the
daemon ``os._exit(137)`` there, exactly like ``kill -9``. The test then restarts
it without the failpoint, lets it recover, finishes whatever approvals remain,
and compares the final state with one uninterrupted walk: same IUs, same ledger
(verified, same entries, each where its run's anchor says), same KB docs,
exactly two consumed approvals, every sidecar and KB doc decoding. Also: SIGTERM
while a walk waits on the database drains (exit 0, the walk paused at the next
phase boundary, a restart continues it), and a kill -9 while a run
waits at a gate leaves it waiting.

A LIVE run that fails after leg A (rejected at SG_2, or drift at SG_2: a new version
published during the pause) is killed at each failpoint of its undo (``undo:pending``,
``undo:restored``, ``undo:recorded``): the restarted daemon finishes the undo, and the
outcome is that of an undo nobody interrupted — the rows restored, one rollback envelope.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.core.kbdocs import Decision, StopDoc, stop_doc_id
from cutter.core.ledger import RollbackEnvelope
from cutter.core.protocol import Accepted, ApprovalStored, Error, Resume, RunSummary
from cutter.core.route import PHASES, Phase
from cutter.core.states import Rollback, RunState
from cutter.daemon.client import DaemonUnavailable
from cutter.runtime.failpoints import ENV as FAILPOINT_ENV
from tests.daemon._db import consumed_approvals, stores, write_lock
from tests.daemon._drive import (
    DOC_ID,
    SAMPLE,
    SAMPLE_UNITS,
    OnDisk,
    WatchedDaemon,
    add_document,
    approval_for,
    approve,
    ask,
    expected_kb_docs,
    final_state,
    finish,
    launch,
    list_runs,
    start_run,
    status,
    walk_until_death,
)
from tests.daemon.conftest import DaemonProcess

LIVE = "--enable-execution"

# Every failpoint, in the order a walk reaches them. An approval's consumption is
# committed before the walk past its gate: "consume:committed" is SG_1's, "@2" SG_2's.
_INSIDE = {
    Phase.CUT_LEG_A: ("leg_a:mid", "leg_a:written"),
    Phase.LEG_B_RECORD: ("leg_b:appended",),
    Phase.LIFECYCLE_ENACT: ("enact:mid",),
}
_CONSUMED = {Phase.CUT_LEG_A: "consume:committed", Phase.LIFECYCLE_ENACT: "consume:committed@2"}
FAILPOINTS: tuple[str, ...] = tuple(
    point
    for phase in PHASES
    for point in (
        *((_CONSUMED[phase],) if phase in _CONSUMED else ()),
        f"before:{phase.value}",
        *_INSIDE.get(phase, ()),
        f"after:{phase.value}",
    )
)

# Where the run must be once a restarted daemon has recovered it, by the step of the
# walk the failpoint killed the daemon in (0 start, 1 SG_1's approval, 2 SG_2's).
AFTER_RESTART = {
    0: RunState.AWAITING_CUT_AUTHORIZATION,
    1: RunState.AWAITING_LIFECYCLE_AUTHORIZATION,
    2: RunState.CLOSEOUT_REPORTED,
}


def phase_of(point: str) -> Phase:
    """The phase a failpoint is in, or the first phase after the gate it is at."""
    for phase, consumed in _CONSUMED.items():
        if point == consumed:
            return phase
    if point.startswith("leg_a:"):
        return Phase.CUT_LEG_A
    if point.startswith("leg_b:"):
        return Phase.LEG_B_RECORD
    if point.startswith("enact:"):
        return Phase.LIFECYCLE_ENACT
    return Phase(point.split(":", 1)[1])


def step_of(point: str) -> int:
    """The command a failpoint kills the daemon in: the walk to SG_1 runs in ``start``,
    to SG_2 in SG_1's approval, to the end in SG_2's."""
    index = PHASES.index(phase_of(point))
    if index < PHASES.index(Phase.CUT_LEG_A):
        return 0
    return 1 if index < PHASES.index(Phase.LIFECYCLE_ENACT) else 2


def test_the_matrix_covers_every_failpoint() -> None:
    assert len(FAILPOINTS) == 2 * len(PHASES) + 6 == 28
    assert len(set(FAILPOINTS)) == 28
    assert [step_of(p) for p in ("after:grant_probe", "before:cut_leg_a", "leg_a:mid")] == [0, 1, 1]
    assert [step_of(p) for p in ("after:write_verify", "enact:mid", "after:closeout")] == [1, 2, 2]
    assert [step_of(p) for p in ("consume:committed", "consume:committed@2")] == [1, 2]


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory holding the sample document and nothing else, to copy."""
    state = tmp_path_factory.mktemp("published") / "state"
    add_document(state_dir=state)
    return state


def fresh_state(published: Path, tmp_path: Path) -> Path:
    state = tmp_path / "state"
    shutil.copytree(published, state)
    return state


@contextlib.contextmanager
def reaped(daemons: list[DaemonProcess]) -> Iterator[list[DaemonProcess]]:
    try:
        yield daemons
    finally:
        for daemon in daemons:
            daemon.kill()


def _consumed_reader(state: Path) -> Callable[[], Awaitable[list[str]]]:
    async def consumed() -> list[str]:
        return [record.approval_kb_id for record in consumed_approvals(state)]

    return consumed


@pytest.fixture(scope="module")
def reference(published: Path, tmp_path_factory: pytest.TempPathFactory) -> OnDisk:
    """One uninterrupted LIVE walk through the daemon, to closeout."""
    state = tmp_path_factory.mktemp("reference") / "state"
    shutil.copytree(published, state)

    async def walk() -> OnDisk:
        with reaped([]) as started:
            daemon = await anyio.to_thread.run_sync(launch, state, LIVE)
            started.append(daemon)
            run = await start_run(daemon.socket)
            assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
            run, resent = await finish(daemon.socket, run, _consumed_reader(state))
            assert run.state is RunState.CLOSEOUT_REPORTED
            assert resent == 1
            assert await anyio.to_thread.run_sync(daemon.stop) == 0
        return await final_state(state, run.run_id)

    on_disk = anyio.run(walk)
    final = on_disk.final
    assert final.state is RunState.CLOSEOUT_REPORTED
    assert final.stop_code is None
    assert final.phases_passed == PHASES
    assert len(final.ius) == SAMPLE_UNITS
    assert {row[-1] for row in final.ius} == {"active"}
    assert [entry[1] for entry in final.ledger] == ["CutEnvelope"]
    assert final.source_cut
    assert final.kb_docs == expected_kb_docs(live=True)
    assert final.consumed == ("approvals/<run>/SG_1", "approvals/<run>/SG_2")
    assert on_disk.refusal_codes == ("APPROVAL_CONSUMED_ALREADY",)
    return on_disk


async def _launch(
    state: Path, daemons: list[DaemonProcess], *, failpoint: str | None = None
) -> WatchedDaemon:
    env = {FAILPOINT_ENV: failpoint} if failpoint is not None else None
    daemon: WatchedDaemon = await anyio.to_thread.run_sync(
        functools.partial(launch, state, LIVE, env=env)
    )
    daemons.append(daemon)
    return daemon


async def _recovered(daemon: WatchedDaemon, run_id: str) -> RunSummary:
    """The run once the restarted daemon has walked it to its next stop."""
    if run_id in daemon.recovering():
        await anyio.to_thread.run_sync(daemon.wait_stopped, run_id)
    return await status(daemon.socket, run_id)


# -- kill -9 at every failpoint -------------------------------------------------------------


@pytest.mark.subprocess
@pytest.mark.anyio
@pytest.mark.parametrize("point", FAILPOINTS)
async def test_kill_9_at_failpoint_then_restart_ends_as_an_uninterrupted_walk(
    point: str,
    published: Path,
    reference: OnDisk,
    tmp_path: Path,
    daemons: list[DaemonProcess],
) -> None:
    state = fresh_state(published, tmp_path)
    armed = await _launch(state, daemons, failpoint=point)
    died_in = await walk_until_death(armed.socket)
    assert died_in == step_of(point), f"{point} killed the daemon in step {died_in}"
    # Already dead: kill() only reaps it. 137 is the failpoint's os._exit, not our signal.
    assert await anyio.to_thread.run_sync(armed.kill) == 137

    # What the crash left: one run, mid-walk, its sidecar whole, and exactly the
    # approvals it records as used consumed — killed right after an approval's
    # consumption too: the consumption and the advance are one transaction.
    async with stores(state) as config:
        run_store = config.run_store
        (run_id,) = await run_store.run_ids()
        crashed = await run_store.load(run_id)
        consumed = set(await run_store.consumed_for(run_id))
    assert crashed.state in (RunState.CREATED, RunState.RUNNING), crashed.state
    assert consumed == crashed.approvals_used
    if point.startswith("consume:"):
        assert len(consumed) == step_of(point), consumed

    restarted = await _launch(state, daemons)
    assert [r.run_id for r in await list_runs(restarted.socket)] == [run_id]
    assert restarted.recovering() == [run_id]
    run = await _recovered(restarted, run_id)
    async with stores(state) as config:
        rows = await config.target.ius.rows(DOC_ID)
        entries = await config.target.ledger.entries()  # type: ignore[attr-defined]
    if died_in == 0:
        # Nothing may be written before SG_1 is approved, crash or not.
        assert rows == [], f"{len(rows)} IU rows written without an SG_1 approval"
        assert entries == []
    if died_in <= 1:
        # Nothing may go live before SG_2 is approved, crash or not.
        active = [r.iu_id for r in rows if r.state != "staged"]
        assert active == [], f"{len(active)} IUs enacted without an SG_2 approval"
    assert run.state is AFTER_RESTART[died_in], (run.state, run.stop_code, run.stop_message)

    run, resent = await finish(restarted.socket, run, _consumed_reader(state))
    assert run.state is RunState.CLOSEOUT_REPORTED, (run.stop_code, run.stop_message)
    for record in consumed_approvals(state):  # a closed run takes no approval, consumed or not
        reply = await _resend(restarted, run_id, record.approval_kb_id)
        assert reply.code == "E_RUN_NOT_RESUMABLE", reply
    assert await anyio.to_thread.run_sync(restarted.stop) == 0

    on_disk = await final_state(state, run_id)
    assert on_disk.final == reference.final
    assert len(on_disk.consumed_ids) == 2
    assert on_disk.refusal_codes == ("APPROVAL_CONSUMED_ALREADY",) * resent


async def _resend(daemon: WatchedDaemon, run_id: str, approval_kb_id: str) -> Error:
    reply = await ask(daemon.socket, Resume(run_id=run_id, approval_kb_id=approval_kb_id))
    assert isinstance(reply, Error), reply
    return reply


# -- kill -9 between an approval's consumption and the run's advance ---------------------------


@pytest.mark.subprocess
@pytest.mark.anyio
@pytest.mark.parametrize("nth", [1, 2])
async def test_a_reviewers_retry_after_a_kill_at_consumption_is_the_same_decision(
    nth: int, published: Path, reference: OnDisk, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """The daemon dies right after it committed the approval consumed with the run's
    advance (the issue's "kill -9 10-30 ms after command_received"). The restart
    walks on from there; the reviewer's client saw only the hang-up and sends the
    same decision again: it is recognised, not consumed a second time."""
    state = fresh_state(published, tmp_path)
    armed = await _launch(state, daemons, failpoint=f"consume:committed@{nth}")
    run = await start_run(armed.socket)
    if nth == 2:
        run = (await approve(armed.socket, run)).run
    decision = approval_for(run)  # what the reviewer's client sends, and sends again
    with pytest.raises(DaemonUnavailable):
        await ask(armed.socket, decision)
    assert await anyio.to_thread.run_sync(armed.kill) == 137
    consumed = [r.approval_kb_id for r in consumed_approvals(state)]
    assert len(consumed) == nth

    restarted = await _launch(state, daemons)
    assert restarted.recovering() == [run.run_id]
    advanced = await _recovered(restarted, run.run_id)
    assert advanced.state is AFTER_RESTART[nth], (advanced.stop_code, advanced.stop_message)
    retried = await ask(restarted.socket, decision)
    assert isinstance(retried, ApprovalStored), retried
    assert retried.replayed
    assert retried.approval_kb_id == consumed[-1]
    assert retried.run == await status(restarted.socket, run.run_id)
    assert [r.approval_kb_id for r in consumed_approvals(state)] == consumed  # none new

    run, _ = await finish(restarted.socket, retried.run, _consumed_reader(state))
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert await anyio.to_thread.run_sync(restarted.stop) == 0
    on_disk = await final_state(state, run.run_id)
    assert on_disk.final == reference.final
    assert len(on_disk.consumed_ids) == 2


@pytest.mark.subprocess
def test_a_reviewer_whose_daemon_died_is_told_where_the_decision_went(
    published: Path, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = fresh_state(published, tmp_path)
    armed = launch(state, LIVE, env={FAILPOINT_ENV: "consume:committed"})
    daemons.append(armed)
    run = anyio.run(start_run, armed.socket)
    argv = ["approve", run.run_id, "--gate", "SG_1", "--approver", "reviewer-bob"]
    argv += ["--reason", "plan checked"]
    result = CliRunner().invoke(main, [*argv, "--socket", str(armed.socket)])
    assert result.exit_code == 2, result.output
    (record,) = consumed_approvals(state)
    assert result.stderr.startswith("E_DAEMON_UNAVAILABLE: ")
    assert f"stored and used as {record.approval_kb_id}" in result.stderr
    assert f"cutter status {run.run_id}" in result.stderr
    assert "Traceback" not in result.output


# -- kill -9 at a gate ------------------------------------------------------------------------


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_kill_9_while_waiting_at_a_gate_leaves_the_run_waiting(
    published: Path, reference: OnDisk, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = fresh_state(published, tmp_path)
    first = await _launch(state, daemons)
    run = await start_run(first.socket)
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert await anyio.to_thread.run_sync(first.kill) == -signal.SIGKILL

    second = await _launch(state, daemons)
    assert second.recovering() == []
    waiting = await status(second.socket, run.run_id)
    assert (waiting.state, waiting.waiting) == (run.state, run.waiting)
    # The approval a reviewer prepared before the restart still answers the request.
    run = (await approve(second.socket, run)).run
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    run, _ = await finish(second.socket, run, _consumed_reader(state))
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert await anyio.to_thread.run_sync(second.stop) == 0
    assert (await final_state(state, run.run_id)).final == reference.final


# -- SIGTERM while a command waits on a durable write -------------------------------------------


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_sigterm_while_a_walk_waits_on_the_database_drains_and_a_restart_continues(
    published: Path, reference: OnDisk, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Another process holds the database's write lock (as ``add-document`` may) while
    a walk resumed past SG_1 waits to commit the approval's consumption: SIGTERM
    drains once the lock is let go (exit 0), the walk pauses at the next phase
    boundary with exactly its approval consumed, and a restarted daemon finishes
    it as if nothing happened."""
    state = fresh_state(published, tmp_path)
    daemon = await _launch(state, daemons)
    run = await start_run(daemon.socket)
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    stored = await approve(daemon.socket, run, resume=False)
    resume = Resume(run_id=run.run_id, approval_kb_id=stored.approval_kb_id, wait=False)

    def held_then_sigterm() -> None:
        with write_lock(state):
            assert isinstance(anyio.run(ask, daemon.socket, resume), Accepted)
            daemon.process.send_signal(signal.SIGTERM)
            daemon.wait_named("daemon_draining")

    with anyio.fail_after(60):
        await anyio.to_thread.run_sync(held_then_sigterm, abandon_on_cancel=True)
    assert await anyio.to_thread.run_sync(functools.partial(daemon.process.wait, 60)) == 0
    await anyio.to_thread.run_sync(daemon.kill)  # only reaps: closes its pipe
    paused = daemon.logged("walk_paused")
    assert [(e["run_id"], e["phase"]) for e in paused] == [(run.run_id, "cut_leg_a")]
    assert daemon.logged("daemon_stopped")

    async with stores(state) as config:
        on_disk = await config.run_store.load(run.run_id)
        consumed = await config.run_store.consumed_for(run.run_id)
    assert on_disk.state is RunState.RUNNING
    assert on_disk.phases_passed == PHASES[: PHASES.index(Phase.CUT_LEG_A)]
    assert consumed == [stored.approval_kb_id]
    assert on_disk.approvals_used == {stored.approval_kb_id}

    restarted = await _launch(state, daemons)
    assert restarted.recovering() == [run.run_id]
    run = await _recovered(restarted, run.run_id)
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    run, _ = await finish(restarted.socket, run, _consumed_reader(state))
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert await anyio.to_thread.run_sync(restarted.stop) == 0
    assert (await final_state(state, run.run_id)).final == reference.final


# -- kill -9 inside the undo of a failing live run ---------------------------------------------

UNDO_FAILPOINTS = ("undo:pending", "undo:restored", "undo:recorded")
# How the live run fails after leg A, and the state it ends in once undone.
FAILURES = {"reject": RunState.REJECTED, "drift": RunState.FAILED}


async def _fail_after_leg_a(daemon: WatchedDaemon, state: Path, failure: str) -> str:
    """Walk a LIVE run to SG_2 (leg A wrote its rows) and make it fail there; its run id.
    A failpoint in the undo kills the daemon during the last command."""
    run = await start_run(daemon.socket)
    run = (await approve(daemon.socket, run)).run
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    async with stores(state) as config:
        assert len(await config.target.ius.rows(DOC_ID)) == SAMPLE_UNITS
    decision = Decision.APPROVE
    if failure == "drift":
        edited = state.parent / "garden-charter-v2.md"
        edited.write_bytes(SAMPLE.read_bytes() + b"\nA late amendment.\n")
        await anyio.to_thread.run_sync(
            functools.partial(add_document, DOC_ID, edited, state_dir=state)
        )
    else:
        decision = Decision.REJECT
    with contextlib.suppress(DaemonUnavailable):
        await approve(daemon.socket, run, decision=decision)
    return run.run_id


@pytest.fixture(scope="module")
def undone(published: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, OnDisk]:
    """Each failure, undone by a daemon nobody interrupted."""

    async def fail(failure: str) -> OnDisk:
        state = tmp_path_factory.mktemp(f"undone-{failure}") / "state"
        shutil.copytree(published, state)
        with reaped([]) as started:
            daemon = await anyio.to_thread.run_sync(launch, state, LIVE)
            started.append(daemon)
            run_id = await _fail_after_leg_a(daemon, state, failure)
            run = await status(daemon.socket, run_id)
            assert run.state is FAILURES[failure], (run.state, run.stop_message)
            assert await anyio.to_thread.run_sync(daemon.stop) == 0
        return await final_state(state, run_id)

    references = {failure: anyio.run(fail, failure) for failure in FAILURES}
    for on_disk in references.values():
        final = on_disk.final
        assert final.ius == ()  # the document had no rows before the cut
        assert [entry[1] for entry in final.ledger] == ["CutEnvelope", "RollbackEnvelope"]
        assert not final.source_cut
        assert ("runs/<run>/stop", "StopDoc") in final.kb_docs
    return references


@pytest.mark.subprocess
@pytest.mark.anyio
@pytest.mark.parametrize("point", UNDO_FAILPOINTS)
@pytest.mark.parametrize("failure", FAILURES)
async def test_kill_9_inside_the_undo_then_restart_finishes_it_once(
    failure: str,
    point: str,
    published: Path,
    undone: dict[str, OnDisk],
    tmp_path: Path,
    daemons: list[DaemonProcess],
) -> None:
    state = fresh_state(published, tmp_path)
    armed = await _launch(state, daemons, failpoint=point)
    run_id = await _fail_after_leg_a(armed, state, failure)
    assert await anyio.to_thread.run_sync(armed.kill) == 137  # died at the failpoint

    async with stores(state) as config:
        crashed = await config.run_store.load(run_id)
        rows = await config.target.ius.rows(DOC_ID)
    assert crashed.state is RunState.ROLLBACK_PENDING
    assert crashed.undo is not None
    assert crashed.undo.status is Rollback.PENDING
    assert len(rows) == (SAMPLE_UNITS if point == "undo:pending" else 0)

    restarted = await _launch(state, daemons)
    assert restarted.recovering() == [run_id]
    run = await _recovered(restarted, run_id)
    assert run.state is FAILURES[failure], (run.state, run.stop_message)
    assert run.stop_message is not None
    assert run.stop_message.endswith("; its writes were rolled back")
    assert await anyio.to_thread.run_sync(restarted.stop) == 0

    on_disk = await final_state(state, run_id)
    assert on_disk.final == undone[failure].final
    async with stores(state) as config:
        entries = await config.target.ledger.entries()  # type: ignore[attr-defined]
        stop = await config.kb.get(stop_doc_id(run_id))
    rollbacks = [e for e in entries if isinstance(e.envelope, RollbackEnvelope)]
    assert len(rollbacks) == 1
    assert isinstance(stop, StopDoc)
    assert stop.rollback is Rollback.DONE
