"""A crash at a persisted point, then a restart, ends where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

import cutter.core.mode
from cutter import Mode, RunState
from cutter.core.errors import ApprovalConsumedAlready, ApprovalRecoveryPending
from cutter.core.kbdocs import Decision
from cutter.core.route import Phase
from cutter.core.sidecar import ApprovalUse, Sidecar
from tests._harness import (
    DOC_ID,
    OPERATOR,
    REVIEWER,
    REVIEWER_2,
    Rig,
    build_runner,
    write_sg1_approval,
    write_sg2_approval,
)
from tests._revision import next_revision, over_stored

pytestmark = pytest.mark.anyio


async def _consumed_then_crashed(rig: Rig) -> tuple[Sidecar, str]:
    """A run at SG_1 whose approval was consumed by a process that died before it
    saved the run's advance: the consumption record names the run, the sidecar still
    waits."""
    async with rig.runner:
        at_sg1 = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        sg1 = await write_sg1_approval(rig, at_sg1.run_id)
    at_sg1 = next_revision(at_sg1)
    use = ApprovalUse(
        approval_kb_id=sg1,
        approver=REVIEWER,
        decision=Decision.APPROVE,
        peer=None,
        consumed_at=rig.clock(),
    )
    await rig.run_store.save_consuming(at_sg1, use)
    return at_sg1, sg1


async def test_consumption_interrupted_before_the_sidecar_is_recovered(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    at_sg1, sg1 = await _consumed_then_crashed(rig)
    assert await rig.run_store.consumed_by(sg1) == at_sg1.run_id
    assert await rig.run_store.load(at_sg1.run_id) == at_sg1

    fresh = rig.reopen()
    async with fresh.runner:
        with structlog.testing.capture_logs() as logs:
            at_sg2 = await fresh.runner.resume(at_sg1.run_id, sg1)
        assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        consumed = [e for e in logs if e["event"] == "approval_consumed"]
        assert [e["recovered"] for e in consumed] == [True]
        # still exactly once: the recovered approval cannot be used again
        with pytest.raises(ApprovalConsumedAlready):
            await fresh.runner.resume(at_sg1.run_id, sg1)


async def test_recover_finishes_a_consumption_a_crash_cut_short(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    at_sg1, sg1 = await _consumed_then_crashed(rig)
    fresh = rig.reopen()
    async with fresh.runner:
        unfinished = await fresh.runner.unfinished()
        assert [(u.run_id, u.approval_kb_id) for u in unfinished] == [(at_sg1.run_id, sg1)]
        (at_sg2,) = await fresh.runner.recover()
        assert await fresh.runner.unfinished() == []
    assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    sg1_gate = at_sg2.gates[0]
    assert [(u.approval_kb_id, u.approver) for u in sg1_gate.uses] == [(sg1, REVIEWER)]
    assert await fresh.run_store.consumed_for(at_sg1.run_id) == [sg1]


async def test_another_approval_waits_until_the_cut_short_consumption_is_finished(
    tmp_path: Path,
) -> None:
    rig = build_runner(tmp_path)
    at_sg1, sg1 = await _consumed_then_crashed(rig)
    fresh = rig.reopen()
    async with fresh.runner:
        second = await write_sg1_approval(fresh, at_sg1.run_id, approver=REVIEWER_2)
        with pytest.raises(ApprovalRecoveryPending) as refused:
            await fresh.runner.resume(at_sg1.run_id, second)
        assert sg1 in refused.value.message
        assert await fresh.runner.status(at_sg1.run_id) == at_sg1
        assert await fresh.run_store.consumed_by(second) is None
        (at_sg2,) = await fresh.runner.recover()
    assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    assert [u.approval_kb_id for u in at_sg2.gates[0].uses] == [sg1]
    assert await fresh.run_store.consumed_for(at_sg1.run_id) == [sg1]


async def test_walk_resumes_from_the_last_persisted_phase_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    rig = build_runner(tmp_path)
    saved: list[Sidecar] = []
    original_save = rig.run_store.save

    async def recording_save(sidecar: Sidecar) -> None:
        saved.append(sidecar)
        await original_save(sidecar)

    monkeypatch.setattr(rig.run_store, "save", recording_save)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        uninterrupted = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
    rows_after = await rig.store.rows(DOC_ID)
    ledger_after = await rig.ledger.entries()

    # Crash right after leg B was persisted: put that sidecar back as the latest.
    mid = next(s for s in saved if s.phases_passed and s.phases_passed[-1] is Phase.LEG_B_RECORD)
    assert mid.state is RunState.RUNNING
    await original_save(await over_stored(rig.run_store, mid))
    fresh = rig.reopen()
    async with fresh.runner:
        resumed = await fresh.runner.resume(sc.run_id)
    assert resumed.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    assert resumed.phases_passed == uninterrupted.phases_passed
    assert resumed.pins == uninterrupted.pins
    # the replayed phases wrote nothing twice
    assert await rig.store.rows(DOC_ID) == rows_after
    assert await rig.ledger.entries() == ledger_after
    async with fresh.runner:
        done = await fresh.runner.resume(sc.run_id, await write_sg2_approval(fresh, sc.run_id))
    assert done.state is RunState.CLOSEOUT_REPORTED
    assert [r.state for r in await rig.store.rows(DOC_ID)] == ["active"] * 12


async def test_a_crash_between_a_gate_phase_and_its_gate_never_walks_past_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """grant_probe's pins persisted, the process died before SG_1 opened: recovery
    must open SG_1, not run leg A without an approval."""
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    rig = build_runner(tmp_path)
    saved: list[Sidecar] = []
    original_save = rig.run_store.save

    async def recording_save(sidecar: Sidecar) -> None:
        saved.append(sidecar)
        await original_save(sidecar)

    monkeypatch.setattr(rig.run_store, "save", recording_save)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
    probed = next(
        s
        for s in saved
        if s.phases_passed[-1:] == (Phase.GRANT_PROBE,) and s.state is RunState.RUNNING
    )
    assert probed.gates == ()
    await original_save(await over_stored(rig.run_store, probed))  # the gate never opened
    fresh = rig.reopen()
    async with fresh.runner:
        recovered = await fresh.runner.recover()
    assert [r.state for r in recovered] == [RunState.AWAITING_CUT_AUTHORIZATION]
    assert recovered[0].phases_passed == sc.phases_passed
    assert await rig.store.rows(DOC_ID) == []
