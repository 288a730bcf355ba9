"""Live runs that stop after leg A wrote, as scenarios any target can run (issue 10, part 2).

Each scenario takes a ``World`` — a ``RunnerConfig`` over some target (in memory, the
embedded SQLite stores, PostgreSQL), a way to publish a new version of ``DOC_ID``, and the test's
``monkeypatch`` — cuts a first version to the end (its 9 rows are what every later
run backs up and must find again), then walks a live run of a second version into
one stop and checks how it ended:

- undone: FAILED (or ABORTED) with the stop code, the document's rows exactly as the
  backup holds them, one rollback envelope for the run, the source version not marked
  cut, ``undo.status`` done in the sidecar and ``rollback`` done in the stop doc;
- pending, when the undo itself fails: ROLLBACK_PENDING, a stop message that says so,
  and ``abort``, ``resume`` or a restart's recovery finishing it;
- standing, once the cut is committed (closeout failing after ``lifecycle_enact``).

``tests/test_undo.py`` runs them on the in-memory and the embedded SQLite stores,
``tests/pg/test_undo_pg.py`` on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

import cutter.walk.phases
import cutter.walk.supervisor
from cutter.core.errors import StopCode, StopVerifyFailed
from cutter.core.kbdocs import Approval, Decision, StopDoc, stop_doc_id
from cutter.core.ledger import CutEnvelope, LedgerEnvelope, RollbackEnvelope, verify_chain
from cutter.core.mode import Mode
from cutter.core.records import Candidate, IURow, IUState
from cutter.core.route import Gate, Phase, Pin, PinValue
from cutter.core.sidecar import Sidecar
from cutter.core.states import Rollback, RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.walk.gatekeeper import Gatekeeper
from cutter.walk.phases import PhaseContext, PhaseOutput
from cutter.walk.runner import Runner, RunnerConfig
from tests._harness import OPERATOR, REVIEWER

DOC_ID = "doc-charter-001"
FIRST, SECOND, THIRD = (InMemoryDiscoverer.seeded(n) for n in (9, 12, 13))
Publish = Callable[[bytes], Awaitable[str]]


class Versions:
    """Finds the candidates of whichever seeded version it is shown."""

    def __init__(self, *seeded: InMemoryDiscoverer) -> None:
        self._by_source = {d.source: d.candidates for d in seeded}

    def discover(self, data: bytes) -> Sequence[Candidate]:
        return self._by_source[data]


DISCOVERER = Versions(FIRST, SECOND, THIRD)


@dataclass
class World:
    config: RunnerConfig
    publish: Publish  # store bytes as DOC_ID's current version; returns its sv_id
    monkeypatch: pytest.MonkeyPatch

    def runner(self, **changes: Any) -> Runner:
        return Runner(dataclasses.replace(self.config, **changes))

    async def rows(self) -> list[IURow]:
        return await self.config.target.ius.rows(DOC_ID)

    async def rollbacks(self, run_id: str) -> list[RollbackEnvelope]:
        return [
            e.envelope
            for e in await self.config.target.ledger.entries()
            if isinstance(e.envelope, RollbackEnvelope) and e.envelope.run_id == run_id
        ]

    async def stop_doc(self, run_id: str) -> StopDoc:
        doc = await self.config.kb.get(stop_doc_id(run_id))
        assert isinstance(doc, StopDoc)
        return doc


_serial = itertools.count(1)


async def approve(world: World, sidecar: Sidecar, decision: Decision = Decision.APPROVE) -> str:
    """An approval of exactly the gate ``sidecar`` waits at; its kb_id."""
    gate = sidecar.pending_gate
    assert gate is not None, f"run {sidecar.run_id} is {sidecar.state}, not at a gate"
    kb_id = f"approvals/{sidecar.run_id}/{gate.gate.value}-{next(_serial)}"
    await world.config.kb.put(
        kb_id,
        Approval(
            run_id=sidecar.run_id,
            gate=gate.gate,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            decision=decision,
            approver=REVIEWER,
            reason="checked the plan against the source",
            issued_at=world.config.clock(),
            review_decision_id=f"review-{sidecar.run_id}" if gate.gate is Gate.SG_2 else None,
        ),
    )
    return kb_id


async def cut_to_the_end(world: World, runner: Runner) -> Sidecar:
    sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
    sc = await runner.resume(sc.run_id, await approve(world, sc))
    sc = await runner.resume(sc.run_id, await approve(world, sc))
    assert sc.state is RunState.CLOSEOUT_REPORTED, sc.stop
    return sc


async def earlier_cut(world: World, runner: Runner) -> list[IURow]:
    """Cut FIRST to the end, publish SECOND: the rows every later run backs up."""
    await world.publish(FIRST.source)
    await cut_to_the_end(world, runner)
    await world.publish(SECOND.source)
    rows = await world.rows()
    assert [r.state for r in rows] == [IUState.ACTIVE] * 9
    return rows


async def to_sg2(world: World, runner: Runner) -> Sidecar:
    sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
    sc = await runner.resume(sc.run_id, await approve(world, sc))
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
    return sc


async def assert_undone(
    world: World, sc: Sidecar, before: list[IURow], code: StopCode, state: RunState
) -> None:
    """``sc`` ended ``state``/``code`` with its writes undone, exactly once."""
    assert (sc.state, sc.stop_code) == (state, code.value), sc.stop
    assert await world.rows() == before
    entries = await world.config.target.ledger.entries()
    assert verify_chain(entries) == entries[-1].entry_hash
    (rollback,) = await world.rollbacks(sc.run_id)
    assert entries[-1].envelope == rollback
    assert rollback.change_set_id == _change_set(sc)
    assert rollback.backup_id == sc.pins[Pin.BACKUP_ID]
    assert rollback.sv_id == sc.pins[Pin.SOURCE_VERSION_ID]
    assert await world.config.target.sources.cut_by(str(sc.pins[Pin.SOURCE_VERSION_ID])) is None
    assert sc.undo is not None
    assert sc.undo.status is Rollback.DONE
    assert sc.undo.reason == rollback.reason
    assert sc.stop is not None
    assert sc.stop.message.endswith("; its writes were rolled back")
    assert await world.config.run_store.load(sc.run_id) == sc
    doc = await world.stop_doc(sc.run_id)
    assert (doc.code, doc.message, doc.rollback) == (code, sc.stop.message, Rollback.DONE)


def _change_set(sc: Sidecar) -> str:
    if Pin.CHANGE_SET_ID in sc.pins:
        return str(sc.pins[Pin.CHANGE_SET_ID])
    assert sc.undo is not None
    return sc.undo.change_set_id


def body_raising(exc: Exception) -> Callable[[PhaseContext], Awaitable[PhaseOutput]]:
    async def body(ctx: PhaseContext) -> PhaseOutput:
        raise exc

    return body


def replace_body(world: World, phase: Phase, body: Callable[..., Awaitable[PhaseOutput]]) -> None:
    world.monkeypatch.setitem(cutter.walk.phases.BODIES, phase, body)


# --- the scenarios ----------------------------------------------------------------------


async def drift_at_sg2_then_the_next_version_cuts_clean(world: World) -> None:
    """The issue's reproduction: approve SG_1, publish a new version, approve SG_2."""
    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await to_sg2(world, runner)
        assert len(await world.rows()) == 9 + 12  # leg A staged its rows
        approval = await approve(world, sc)
        third = await world.publish(THIRD.source)
        failed = await runner.resume(sc.run_id, approval)
        await assert_undone(world, failed, before, StopCode.DRIFT, RunState.FAILED)
        # A new version is current; the pinned version's own bytes are unchanged.
        assert {d.pin for d in failed.drift} == {"source_version_id"}

        # Cutting the new version leaves exactly its rows active, and no orphans.
        done = await cut_to_the_end(world, runner)
    rows = await world.rows()
    active = [r for r in rows if r.state is IUState.ACTIVE]
    assert [(r.sv_id, r.change_set_id) for r in active] == [
        (third, str(done.pins[Pin.CHANGE_SET_ID]))
    ] * 13
    others = [r for r in rows if r.state is not IUState.ACTIVE]
    assert [(r.iu_id, r.sv_id) for r in others] == [(r.iu_id, r.sv_id) for r in before]
    assert {r.state for r in others} == {IUState.SUPERSEDED}
    kinds = [type(e.envelope) for e in await world.config.target.ledger.entries()]
    assert kinds == [CutEnvelope, CutEnvelope, RollbackEnvelope, CutEnvelope]


async def _stops_after_leg_a(
    world: World, code: StopCode, *, passed: Phase, arrange: Callable[[], None]
) -> Sidecar:
    """Walk a live run through SG_1 into a stop ``arrange`` sets up; check it was undone
    and that the run got no further than ``passed``."""
    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        approval = await approve(world, sc)
        arrange()
        failed = await runner.resume(sc.run_id, approval)
    await assert_undone(world, failed, before, code, RunState.FAILED)
    assert failed.phases_passed[-1] is passed
    return failed


async def structural_verify_fails(world: World) -> None:
    stop = StopVerifyFailed("structural verify: IU 3 does not tile the source")
    await _stops_after_leg_a(
        world,
        StopCode.VERIFY_FAILED,
        passed=Phase.CUT_LEG_A,
        arrange=lambda: replace_body(world, Phase.STRUCTURAL_VERIFY, body_raising(stop)),
    )


async def write_verify_fails(world: World) -> None:
    stop = StopVerifyFailed("write verify: IU 7 read back differs from the plan")
    await _stops_after_leg_a(
        world,
        StopCode.VERIFY_FAILED,
        passed=Phase.LEG_B_RECORD,
        arrange=lambda: replace_body(world, Phase.WRITE_VERIFY, body_raising(stop)),
    )


async def contract_violated_after_leg_a(world: World) -> None:
    async def undeclared(ctx: PhaseContext) -> PhaseOutput:
        pins: dict[Pin, PinValue] = {Pin.STRUCTURAL_VERIFIED: True, Pin.IU_COUNT: 1}
        return PhaseOutput(pins=pins)

    failed = await _stops_after_leg_a(
        world,
        StopCode.CONTRACT_VIOLATED,
        passed=Phase.CUT_LEG_A,
        arrange=lambda: replace_body(world, Phase.STRUCTURAL_VERIFY, undeclared),
    )
    assert failed.stop is not None
    assert "undeclared pins: iu_count" in failed.stop.message


async def phase_crash_after_leg_a(world: World) -> None:
    failed = await _stops_after_leg_a(
        world,
        StopCode.PHASE_FAILED,
        passed=Phase.STRUCTURAL_VERIFY,
        arrange=lambda: replace_body(world, Phase.LEG_B_RECORD, body_raising(RuntimeError("x"))),
    )
    assert failed.stop is not None
    assert failed.stop.error_id is not None


async def phase_timeout_after_leg_a(world: World) -> None:
    async def hangs(ctx: PhaseContext) -> PhaseOutput:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        approval = await approve(world, sc)
    replace_body(world, Phase.STRUCTURAL_VERIFY, hangs)
    async with world.runner(phase_timeout=3.0) as runner:
        failed = await runner.resume(sc.run_id, approval)
    await assert_undone(world, failed, before, StopCode.PHASE_FAILED, RunState.FAILED)
    assert failed.stop is not None
    assert failed.stop.message.startswith("structural_verify did not finish within 3s")


async def gatekeeper_crash_at_sg2(world: World) -> None:
    async def crashes(self: Gatekeeper, message: object, ctx: object) -> object:
        raise RuntimeError("the gatekeeper lost its mind")

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await to_sg2(world, runner)
        approval = await approve(world, sc)
        world.monkeypatch.setattr(Gatekeeper, "receive", crashes)
        failed = await runner.resume(sc.run_id, approval)
    await assert_undone(world, failed, before, StopCode.PHASE_FAILED, RunState.FAILED)
    assert failed.stop is not None
    assert failed.stop.message.startswith("gatekeeper failed unexpectedly (RuntimeError)")


async def supervisor_crash_after_leg_a(world: World) -> None:
    """Part 5: the runner ends a crashed supervisor's run the way the supervisor ends
    one — through the recorder (``run_state_changed``), with a stop doc — and undoes it."""
    check_inputs = cutter.walk.supervisor.check_inputs

    def crashing(phase: Phase, pins: object) -> None:
        if phase is Phase.STRUCTURAL_VERIFY:
            raise RuntimeError("a bug in the supervisor")
        check_inputs(phase, pins)  # type: ignore[arg-type]

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        approval = await approve(world, sc)
        world.monkeypatch.setattr(cutter.walk.supervisor, "check_inputs", crashing)
        with capture_logs() as logs:
            failed = await runner.resume(sc.run_id, approval)
    await assert_undone(world, failed, before, StopCode.PHASE_FAILED, RunState.FAILED)
    assert failed.stop is not None
    assert failed.stop.message.startswith("run supervisor failed unexpectedly (RuntimeError)")
    (crash,) = [e for e in logs if e["event"] == "actor_failed"]
    assert failed.stop.error_id == crash["error_id"]
    changes = [
        (e["from_state"], e["to_state"], e["stop_code"])
        for e in logs
        if e["event"] == "run_state_changed" and e.get("run_id") == sc.run_id
    ]
    assert changes[-2:] == [
        ("RUNNING", "ROLLBACK_PENDING", "STOP_PHASE_FAILED"),
        ("ROLLBACK_PENDING", "FAILED", "STOP_PHASE_FAILED"),
    ]
    assert (await world.stop_doc(sc.run_id)).error_id == crash["error_id"]


async def leg_a_fails_after_a_partial_write(world: World) -> None:
    ius = world.config.target.ius
    write_staged = ius.write_staged

    async def half_then_fails(rows: Sequence[IURow]) -> int:
        await write_staged(rows[: len(rows) // 2])
        raise OSError("the store went away half-way")

    def arrange() -> None:
        world.monkeypatch.setattr(ius, "write_staged", half_then_fails)

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        approval = await approve(world, sc)
        arrange()
        failed = await runner.resume(sc.run_id, approval)
    assert Pin.CHANGE_SET_ID not in failed.pins  # leg A never passed
    await assert_undone(world, failed, before, StopCode.PHASE_FAILED, RunState.FAILED)
    assert failed.phases_passed[-1] is Phase.GRANT_PROBE


async def leg_a_fails_before_writing_undoes_nothing(world: World) -> None:
    ius = world.config.target.ius

    async def fails(rows: Sequence[IURow]) -> int:
        raise OSError("the store is read-only")

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        entries = await world.config.target.ledger.entries()
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        approval = await approve(world, sc)
        world.monkeypatch.setattr(ius, "write_staged", fails)
        failed = await runner.resume(sc.run_id, approval)
    assert (failed.state, failed.stop_code) == (RunState.FAILED, StopCode.PHASE_FAILED.value)
    assert failed.undo is None
    assert await world.rows() == before
    assert await world.config.target.ledger.entries() == entries  # no rollback of nothing
    assert (await world.stop_doc(sc.run_id)).rollback is None


async def enact_fails_after_activating(world: World) -> None:
    ius = world.config.target.ius
    enact = ius.enact

    async def enacts_then_fails(change_set_id: str) -> int:
        await enact(change_set_id)
        raise OSError("the connection dropped after the commit")

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await to_sg2(world, runner)
        approval = await approve(world, sc)
        world.monkeypatch.setattr(ius, "enact", enacts_then_fails)
        failed = await runner.resume(sc.run_id, approval)
    # The earlier cut's rows are active again, not superseded; this cut's are gone.
    await assert_undone(world, failed, before, StopCode.PHASE_FAILED, RunState.FAILED)
    assert failed.phases_passed[-1] is Phase.WRITE_VERIFY


async def closeout_fails_after_the_commit_and_the_cut_stands(world: World) -> None:
    stop = StopVerifyFailed("phase docs missing from the KB: mark")
    async with world.runner() as runner:
        await earlier_cut(world, runner)
        sc = await to_sg2(world, runner)
        approval = await approve(world, sc)
        replace_body(world, Phase.CLOSEOUT, body_raising(stop))
        failed = await runner.resume(sc.run_id, approval)
    assert (failed.state, failed.stop_code) == (RunState.FAILED, StopCode.VERIFY_FAILED.value)
    assert failed.phases_passed[-1] is Phase.LIFECYCLE_ENACT
    assert failed.undo is None
    assert failed.stop is not None
    assert failed.stop.message == (
        "phase docs missing from the KB: mark; "
        "the cut stands: lifecycle_enact committed it, nothing was undone"
    )
    change_set_id = str(failed.pins[Pin.CHANGE_SET_ID])
    active = [r for r in await world.rows() if r.state is IUState.ACTIVE]
    assert [r.change_set_id for r in active] == [change_set_id] * 12
    assert await world.rollbacks(sc.run_id) == []
    sv_id = str(failed.pins[Pin.SOURCE_VERSION_ID])
    assert await world.config.target.sources.cut_by(sv_id) == change_set_id
    assert (await world.stop_doc(sc.run_id)).rollback is None


async def _pending(world: World, runner: Runner) -> tuple[Sidecar, list[IURow], list[int]]:
    """A run whose undo fails once (the store is down for its restore): ROLLBACK_PENDING.
    Returns it, the rows to restore, and a count of restores that reached the store."""
    ius = world.config.target.ius
    restore = ius.restore
    restores: list[int] = []

    async def down_once(backup: Any) -> None:
        restores.append(1)
        if len(restores) == 1:
            raise OSError("connection refused")
        await restore(backup)

    before = await earlier_cut(world, runner)
    sc = await to_sg2(world, runner)
    staged = await world.rows()
    replace_body(world, Phase.LIFECYCLE_ENACT, body_raising(StopVerifyFailed("12 IUs, 11 planned")))
    world.monkeypatch.setattr(ius, "restore", down_once)
    with capture_logs() as logs:
        pending = await runner.resume(sc.run_id, await approve(world, sc))

    assert (pending.state, pending.stop_code) == (
        RunState.ROLLBACK_PENDING,
        StopCode.VERIFY_FAILED.value,
    )
    assert pending.undo is not None
    (failure,) = [e for e in logs if e["event"] == "rollback_failed"]
    assert failure["error_type"] == "OSError"
    assert pending.undo.error_id == failure["error_id"]
    assert pending.stop is not None
    assert pending.stop.message == (
        f"12 IUs, 11 planned; rollback pending: the last attempt failed (error_id "
        f"{failure['error_id']}); resume, abort or a restart retries it"
    )
    doc = await world.stop_doc(sc.run_id)
    assert (doc.rollback, doc.message) == (Rollback.PENDING, pending.stop.message)
    assert await world.rows() == staged  # nothing was restored
    assert await world.rollbacks(sc.run_id) == []
    return pending, before, restores


async def undo_fails_then_abort_finishes_it(world: World) -> None:
    async with world.runner() as runner:
        pending, before, restores = await _pending(world, runner)
        aborted = await runner.abort(pending.run_id, reason="store is back", by="ops-kim")
    await assert_undone(world, aborted, before, StopCode.OPERATOR_ABORT, RunState.ABORTED)
    assert aborted.stop is not None
    assert aborted.stop.message.startswith(
        "aborted by ops-kim: store is back (it had stopped: STOP_VERIFY_FAILED: 12 IUs, 11 planned)"
    )
    (rollback,) = await world.rollbacks(pending.run_id)
    assert rollback.reason == "STOP_VERIFY_FAILED: 12 IUs, 11 planned"  # recorded before
    assert len(restores) == 2


async def undo_fails_then_resume_finishes_it(world: World) -> None:
    async with world.runner() as runner:
        pending, before, _ = await _pending(world, runner)
        failed = await runner.resume(pending.run_id)
    await assert_undone(world, failed, before, StopCode.VERIFY_FAILED, RunState.FAILED)


async def undo_fails_then_recovery_finishes_it(world: World) -> None:
    async with world.runner() as runner:
        pending, before, _ = await _pending(world, runner)
    async with world.runner() as restarted:  # a new process on the same stores
        (failed,) = await restarted.recover()
    assert failed.run_id == pending.run_id
    await assert_undone(world, failed, before, StopCode.VERIFY_FAILED, RunState.FAILED)


async def crash_after_the_envelope_restores_once(world: World) -> None:
    """The process fails to record the end after the envelope was appended: the retry
    finds the envelope and neither restores nor appends a second time."""
    ius, run_store = world.config.target.ius, world.config.run_store
    restore, save = ius.restore, run_store.save
    restores: list[int] = []
    ends: list[Sidecar] = []

    async def counted(backup: Any) -> None:
        restores.append(1)
        await restore(backup)

    async def fails_the_end_once(sidecar: Sidecar) -> None:
        if sidecar.undo is not None and sidecar.undo.status is Rollback.DONE and not ends:
            ends.append(sidecar)
            raise OSError("no space left on device")
        await save(sidecar)

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await to_sg2(world, runner)
        approval = await approve(world, sc)
        replace_body(world, Phase.LIFECYCLE_ENACT, body_raising(StopVerifyFailed("mismatch")))
        world.monkeypatch.setattr(ius, "restore", counted)
        world.monkeypatch.setattr(run_store, "save", fails_the_end_once)
        failed = await runner.resume(sc.run_id, approval)
    assert ends, "the end's save did fail once"
    await assert_undone(world, failed, before, StopCode.VERIFY_FAILED, RunState.FAILED)
    assert len(restores) == 1


async def crash_between_restore_and_envelope_appends_one_envelope(world: World) -> None:
    ledger = world.config.target.ledger
    append = ledger.append
    failures = [OSError("ledger unavailable")]

    async def fails_once(envelope: LedgerEnvelope) -> Any:
        if isinstance(envelope, RollbackEnvelope) and failures:
            raise failures.pop()
        return await append(envelope)

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        sc = await to_sg2(world, runner)
        approval = await approve(world, sc)
        replace_body(world, Phase.LIFECYCLE_ENACT, body_raising(StopVerifyFailed("mismatch")))
        world.monkeypatch.setattr(ledger, "append", fails_once)
        pending = await runner.resume(sc.run_id, approval)
        assert pending.state is RunState.ROLLBACK_PENDING
        assert await world.rows() == before  # restored; the envelope is what failed
        assert await world.rollbacks(sc.run_id) == []
        failed = await runner.resume(sc.run_id)
    await assert_undone(world, failed, before, StopCode.VERIFY_FAILED, RunState.FAILED)


async def unreadable_store_at_the_stop_is_decided_on_retry(world: World) -> None:
    """Leg A fails before writing, and the store cannot say so when the run stops: the
    undo is recorded unchecked, and the retry finds nothing to undo."""
    ius = world.config.target.ius
    change_set = ius.change_set
    down: list[bool] = []

    async def fails(rows: Sequence[IURow]) -> int:
        down.append(True)
        raise OSError("the store is read-only")

    async def unreadable_once(change_set_id: str) -> list[IURow]:
        if down:
            down.pop()
            raise OSError("connection refused")
        return await change_set(change_set_id)

    async with world.runner() as runner:
        before = await earlier_cut(world, runner)
        entries = await world.config.target.ledger.entries()
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        approval = await approve(world, sc)
        world.monkeypatch.setattr(ius, "write_staged", fails)
        world.monkeypatch.setattr(ius, "change_set", unreadable_once)
        pending = await runner.resume(sc.run_id, approval)
        assert pending.state is RunState.ROLLBACK_PENDING
        assert pending.undo is not None
        assert not pending.undo.checked
        assert pending.undo.error_id is not None
        failed = await runner.resume(sc.run_id)
    assert (failed.state, failed.stop_code) == (RunState.FAILED, StopCode.PHASE_FAILED.value)
    assert failed.undo is None
    assert failed.stop is not None
    assert "rollback" not in failed.stop.message
    assert await world.rows() == before
    assert await world.config.target.ledger.entries() == entries


SCENARIOS: tuple[Callable[[World], Awaitable[None]], ...] = (
    drift_at_sg2_then_the_next_version_cuts_clean,
    structural_verify_fails,
    write_verify_fails,
    contract_violated_after_leg_a,
    phase_crash_after_leg_a,
    phase_timeout_after_leg_a,
    gatekeeper_crash_at_sg2,
    supervisor_crash_after_leg_a,
    leg_a_fails_after_a_partial_write,
    leg_a_fails_before_writing_undoes_nothing,
    enact_fails_after_activating,
    closeout_fails_after_the_commit_and_the_cut_stands,
    undo_fails_then_abort_finishes_it,
    undo_fails_then_resume_finishes_it,
    undo_fails_then_recovery_finishes_it,
    crash_after_the_envelope_restores_once,
    crash_between_restore_and_envelope_appends_one_envelope,
    unreadable_store_at_the_stop_is_decided_on_retry,
)
