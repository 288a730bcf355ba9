"""The gate invariants (the seed's O2 gate-invariant catalogue, and then some).

Every refusal raises its own typed exception, leaves the run's sidecar exactly
as it was (equal, and byte-for-byte on disk) and is recorded as an
``ApprovalRefusal`` KB doc under ``runs/<run_id>/refusals/``. Rejections end the
run and roll back; drift stops the run and nothing further is written.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

import cutter.core.mode
from cutter import GatePolicy, Mode, RunState, StopCode
from cutter.core.errors import (
    ApprovalConsumedAlready,
    ApprovalExpired,
    ApprovalInvalid,
    ApprovalNotFound,
    ApprovalStale,
    ApprovalWrongGate,
    ApprovalWrongRun,
    DuplicateApprover,
    GateRefusal,
    InvalidIdentifier,
    RunNotResumable,
    SelfApprovalRefused,
    StopApprovalRequired,
)
from cutter.core.kbdocs import ApprovalRefusal, Decision, PhaseDoc, SovereignRequest, request_doc_id
from cutter.core.ledger import CutEnvelope, RollbackEnvelope, verify_chain
from cutter.core.records import REQUIRED_GRANTS, Backup, IUState
from cutter.core.route import PHASES, Gate, Phase, Pin
from cutter.core.sidecar import DriftUnit
from cutter.stores.memory.target import InMemoryIUStore
from tests._harness import (
    DOC_ID,
    OLD_ROW,
    OPERATOR,
    REVIEWER,
    REVIEWER_2,
    Paused,
    Rig,
    at_sg1,
    at_sg2,
    build_runner,
    write_approval,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio


async def refusal_ids(rig: Rig, run_id: str) -> set[str]:
    return set(await rig.kb.list(f"runs/{run_id}/refusals"))


async def phase_doc_ids(rig: Rig, run_id: str) -> list[str]:
    return await rig.kb.list(f"runs/{run_id}/phases")


async def assert_refused(
    rig: Rig,
    run_id: str,
    approval_kb_id: str | None,
    expected: type[GateRefusal],
    *,
    gate: Gate = Gate.SG_1,
) -> GateRefusal:
    """Resume with ``approval_kb_id``; check (a) the exact type, (b) the sidecar is
    untouched, (c) one ``ApprovalRefusal`` doc records it. Returns the exception."""
    before = await rig.run_store.load(run_id)
    before_bytes = rig.stored_sidecar(run_id)
    seen = await refusal_ids(rig, run_id)
    with pytest.raises(expected) as info:
        await rig.runner.resume(run_id, approval_kb_id)
    assert type(info.value) is expected
    assert info.value.run_id == run_id
    assert await rig.run_store.load(run_id) == before
    assert rig.stored_sidecar(run_id) == before_bytes
    new = sorted(await refusal_ids(rig, run_id) - seen)
    assert len(new) == 1, new
    doc = await rig.kb.get(new[0])
    assert isinstance(doc, ApprovalRefusal)
    assert doc.run_id == run_id
    assert doc.gate is gate
    assert doc.approval_kb_id == approval_kb_id
    assert doc.code == expected.code
    assert doc.message == info.value.message
    if approval_kb_id is not None and expected is not ApprovalConsumedAlready:
        assert await rig.run_store.consumed_by(approval_kb_id) is None
    return info.value


class TestGateInvariants:
    # --- what the approval says -----------------------------------------------------
    async def test_no_approval_raises_stop_approval_required(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig)
            exc = await assert_refused(rig, sc.run_id, None, StopApprovalRequired)
        assert exc.code == StopCode.APPROVAL_REQUIRED == "STOP_APPROVAL_REQUIRED"

    async def test_approval_for_sg2_while_at_sg1_is_wrong_gate(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        kb_id = await write_sg2_approval(rig, sc.run_id)
        await assert_refused(rig, sc.run_id, kb_id, ApprovalWrongGate)

    async def test_approval_naming_another_run_is_wrong_run(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        kb_id = await write_sg1_approval(rig, sc.run_id, for_run="run-0123456789abcdef")
        await assert_refused(rig, sc.run_id, kb_id, ApprovalWrongRun)

    async def test_wrong_request_digest_is_stale(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        kb_id = await write_sg1_approval(rig, sc.run_id, request_digest="0" * 64)
        await assert_refused(rig, sc.run_id, kb_id, ApprovalStale)

    async def test_wrong_nonce_is_stale(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        kb_id = await write_sg1_approval(rig, sc.run_id, nonce="f" * 32)
        await assert_refused(rig, sc.run_id, kb_id, ApprovalStale)

    async def test_issued_before_the_gate_opened_is_stale(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        gate = sc.pending_gate
        assert gate is not None
        kb_id = await write_sg1_approval(
            rig, sc.run_id, issued_at=gate.opened_at - timedelta(seconds=1)
        )
        await assert_refused(rig, sc.run_id, kb_id, ApprovalStale)

    async def test_issued_in_the_future_is_stale(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        kb_id = await write_sg1_approval(
            rig, sc.run_id, issued_at=rig.clock.now + timedelta(hours=1)
        )
        await assert_refused(rig, sc.run_id, kb_id, ApprovalStale)

    async def test_expired_approval_is_refused_and_never_auto_approves(
        self, tmp_path: Path
    ) -> None:
        policy = GatePolicy(approval_ttl=timedelta(hours=2))
        rig = build_runner(tmp_path, policy=policy)
        async with rig.runner:
            sc = await at_sg1(rig)
            kb_id = await write_sg1_approval(rig, sc.run_id)
            rig.clock.advance(policy.approval_ttl + timedelta(seconds=1))
            await assert_refused(rig, sc.run_id, kb_id, ApprovalExpired)
            # A long wait does not release the gate by itself either.
            await assert_refused(rig, sc.run_id, None, StopApprovalRequired)

    async def test_approval_just_inside_ttl_is_accepted(self, tmp_path: Path) -> None:
        policy = GatePolicy(approval_ttl=timedelta(hours=2))
        rig = build_runner(tmp_path, policy=policy)
        async with rig.runner:
            sc = await at_sg1(rig)
            kb_id = await write_sg1_approval(rig, sc.run_id)
            rig.clock.advance(policy.approval_ttl - timedelta(seconds=1))
            sc = await rig.runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION

    async def test_self_approval_is_refused(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        kb_id = await write_sg1_approval(rig, sc.run_id, approver=OPERATOR)
        await assert_refused(rig, sc.run_id, kb_id, SelfApprovalRefused)

    async def test_self_approval_accepted_when_policy_allows_it(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path, policy=GatePolicy(allow_self_approval=True))
        async with rig.runner:
            sc = await at_sg1(rig)
            kb_id = await write_sg1_approval(rig, sc.run_id, approver=OPERATOR)
            sc = await rig.runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        sg1 = sc.gate(Gate.SG_1)
        assert sg1 is not None
        assert [(u.approval_kb_id, u.approver) for u in sg1.uses] == [(kb_id, OPERATOR)]

    async def test_sg2_approval_without_review_decision_id_is_refused(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg2(rig)
            kb_id = await write_approval(rig, sc.run_id, Gate.SG_2, review_decision_id=None)
            exc = await assert_refused(rig, sc.run_id, kb_id, StopApprovalRequired, gate=Gate.SG_2)
            assert "review_decision_id" in exc.message
            # The same gate accepts an approval that carries one.
            sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
        assert sc.state is RunState.CLOSEOUT_REPORTED

    # --- approvals come from outside: every field is checked ------------------------------
    @pytest.mark.parametrize("approver", ["", f"{OPERATOR} ", f"{OPERATOR}\n", " "])
    async def test_approver_that_is_no_valid_identity_is_refused(
        self, tmp_path: Path, approver: str
    ) -> None:
        # OPERATOR + " " would otherwise slip past the self-approval rule.
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig)
            kb_id = await write_sg1_approval(rig, sc.run_id, approver=approver)
            with pytest.raises(GateRefusal):
                await rig.runner.resume(sc.run_id, kb_id)
            assert await rig.run_store.load(sc.run_id) == sc
            assert await rig.run_store.consumed_by(kb_id) is None
            assert len(await refusal_ids(rig, sc.run_id)) == 1

    async def test_sg2_approval_with_an_empty_review_decision_id_is_refused(
        self, tmp_path: Path
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg2(rig)
            kb_id = await write_sg2_approval(rig, sc.run_id, review_decision_id="")
            with pytest.raises(GateRefusal):
                await rig.runner.resume(sc.run_id, kb_id)
            assert await rig.run_store.load(sc.run_id) == sc
            assert len(await refusal_ids(rig, sc.run_id)) == 1

    async def test_approval_issued_without_a_timezone_is_refused_and_the_run_survives(
        self, tmp_path: Path
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig)
            naive = rig.clock().replace(tzinfo=None)
            kb_id = await write_sg1_approval(rig, sc.run_id, issued_at=naive)
            with pytest.raises(GateRefusal):
                await rig.runner.resume(sc.run_id, kb_id)
            after = await rig.run_store.load(sc.run_id)
            assert after.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert after == sc
            assert len(await refusal_ids(rig, sc.run_id)) == 1
            # A well-formed approval still releases the gate.
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION

    # --- where the approval points ------------------------------------------------------
    async def test_approval_kb_id_that_does_not_exist_is_not_found(
        self, rig_at_sg1: Paused
    ) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        await assert_refused(rig, sc.run_id, "approvals/nobody/wrote-this", ApprovalNotFound)

    async def test_kb_id_of_a_non_approval_doc_is_not_found(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        request_id = request_doc_id(sc.run_id, Gate.SG_1)
        assert isinstance(await rig.kb.get(request_id), SovereignRequest)
        await assert_refused(rig, sc.run_id, request_id, ApprovalNotFound)

    async def test_corrupt_approval_doc_is_invalid(self, rig_at_sg1: Paused) -> None:
        rig, sc = rig_at_sg1.rig, rig_at_sg1.run
        kb_id = await write_sg1_approval(rig, sc.run_id)
        rig.overwrite_kb_doc(kb_id, b"\x00\xffnot json {{{")
        await assert_refused(rig, sc.run_id, kb_id, ApprovalInvalid)
        assert rig.stored_kb_doc(kb_id) == b"\x00\xffnot json {{{"

    @pytest.mark.parametrize(
        "hostile",
        ["../../etc/passwd", "approvals/x\x00y", "/etc/passwd", "approvals//x", ".."],
    )
    async def test_hostile_approval_kb_id_is_refused_before_anything_is_written(
        self, tmp_path: Path, hostile: str
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig)
            files = rig.stored()
            with pytest.raises(InvalidIdentifier):
                await rig.runner.resume(sc.run_id, hostile)
            assert rig.stored() == files
            assert await rig.run_store.load(sc.run_id) == sc

    async def test_approval_kb_id_the_kb_cannot_store_is_refused_and_the_run_survives(
        self, tmp_path: Path
    ) -> None:
        # An inner segment ending in ".json" is refused (cutter.core.ids.check_kb_id): bad
        # input must be a typed error, the run unchanged.
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig)
            files = rig.stored()
            with pytest.raises(InvalidIdentifier):
                await rig.runner.resume(sc.run_id, "approvals.json/x")
            after = await rig.run_store.load(sc.run_id)
            assert after.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert after == sc
            assert rig.stored() == files

    # --- how many approve -----------------------------------------------------------------
    async def test_two_required_approvals_first_waits_second_advances(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path, policy=GatePolicy(required_approvals=2))
        async with rig.runner:
            sc = await at_sg1(rig)
            request = await rig.kb.get(request_doc_id(sc.run_id, Gate.SG_1))
            assert isinstance(request, SovereignRequest)
            assert request.required_approvals == 2
            first = await write_sg1_approval(rig, sc.run_id, approver=REVIEWER)
            after_first = await rig.runner.resume(sc.run_id, first)
            assert after_first.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert after_first.stop_code == StopCode.APPROVAL_REQUIRED
            assert after_first.phases_passed == sc.phases_passed
            assert after_first.pins == sc.pins
            gate = after_first.pending_gate
            assert gate is not None
            assert [u.approver for u in gate.uses] == [REVIEWER]
            assert not gate.satisfied
            assert await rig.run_store.consumed_by(first) == sc.run_id
            assert await rig.run_store.load(sc.run_id) == after_first

            second = await write_sg1_approval(rig, sc.run_id, approver=REVIEWER_2)
            done = await rig.runner.resume(sc.run_id, second)
        assert done.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        sg1 = done.gate(Gate.SG_1)
        assert sg1 is not None
        assert [u.approver for u in sg1.uses] == [REVIEWER, REVIEWER_2]
        assert done.phases_passed == PHASES[:9]

    async def test_same_approver_twice_is_a_duplicate(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path, policy=GatePolicy(required_approvals=2))
        async with rig.runner:
            sc = await at_sg1(rig)
            await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            again = await write_sg1_approval(rig, sc.run_id, approver=REVIEWER)
            await assert_refused(rig, sc.run_id, again, DuplicateApprover)
            # The refused duplicate was not consumed and nothing advanced.
            waiting = await rig.run_store.load(sc.run_id)
            assert waiting.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert waiting.pending_gate is not None
            assert len(waiting.pending_gate.uses) == 1

    # --- exactly once ---------------------------------------------------------------------
    async def test_consumed_approval_is_refused_again_also_after_a_restart(
        self, tmp_path: Path
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig)
            kb_id = await write_sg1_approval(rig, sc.run_id)
            sc = await rig.runner.resume(sc.run_id, kb_id)
            assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        reopened = rig.reopen()
        async with reopened.runner:
            # Offered at SG_2 the consumed SG_1 approval is refused as consumed,
            # before its gate is even looked at.
            exc = await assert_refused(
                reopened, sc.run_id, kb_id, ApprovalConsumedAlready, gate=Gate.SG_2
            )
        assert isinstance(exc, ApprovalConsumedAlready)
        assert exc.approval_kb_id == kb_id

    async def test_rejected_approval_consumed_once_cannot_be_reused(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            first = await at_sg1(rig)
            reject = await write_sg1_approval(rig, first.run_id, decision=Decision.REJECT)
            rejected = await rig.runner.resume(first.run_id, reject)
            assert rejected.state is RunState.REJECTED
            other = await at_sg1(rig)  # the rejection freed the document for another run
            assert await rig.run_store.consumed_by(reject) == first.run_id
            with pytest.raises(RunNotResumable):
                await rig.runner.resume(first.run_id, reject)
            # Offered to another run it is refused as consumed, not re-read.
            await assert_refused(rig, other.run_id, reject, ApprovalConsumedAlready)
        assert await rig.run_store.load(first.run_id) == rejected

    # --- rejection ------------------------------------------------------------------------
    async def test_reject_at_sg1_ends_the_run_and_leaves_the_store_untouched(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path, store=InMemoryIUStore([OLD_ROW]))
        async with rig.runner:
            sc = await at_sg1(rig, Mode.LIVE)
            kb_id = await write_sg1_approval(rig, sc.run_id, decision=Decision.REJECT)
            sc = await rig.runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.REJECTED
        assert sc.stop_code == StopCode.APPROVAL_REJECTED == "STOP_APPROVAL_REJECTED"
        assert await rig.store.rows(DOC_ID) == [OLD_ROW]
        assert await rig.ledger.entries() == []
        assert await phase_doc_ids(rig, sc.run_id) == [sc.phase_docs[p] for p in PHASES[:5]]
        sg1 = sc.gate(Gate.SG_1)
        assert sg1 is not None
        assert sg1.rejected

    async def test_reject_at_sg2_of_a_live_run_rolls_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path, store=InMemoryIUStore([OLD_ROW]))
        before = await rig.store.rows(DOC_ID)
        async with rig.runner:
            sc = await at_sg2(rig, Mode.LIVE)
            staged = [r for r in await rig.store.rows(DOC_ID) if r.state is IUState.STAGED]
            assert len(staged) == 12
            kb_id = await write_sg2_approval(rig, sc.run_id, decision=Decision.REJECT)
            sc = await rig.runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.REJECTED
        assert sc.stop_code == StopCode.APPROVAL_REJECTED
        assert await rig.store.rows(DOC_ID) == before == [OLD_ROW]
        entries = await rig.ledger.entries()
        verify_chain(entries)
        assert [type(e.envelope) for e in entries] == [CutEnvelope, RollbackEnvelope]
        rollback = entries[-1].envelope
        assert isinstance(rollback, RollbackEnvelope)
        assert rollback.run_id == sc.run_id
        assert rollback.backup_id == sc.pins[Pin.BACKUP_ID]
        assert rollback.change_set_id == sc.pins[Pin.CHANGE_SET_ID]
        assert Phase.LIFECYCLE_ENACT not in sc.phases_passed
        assert await rig.sources.cut_by(str(sc.pins[Pin.SOURCE_VERSION_ID])) is None

    # --- drift ----------------------------------------------------------------------------
    async def test_drift_in_writer_grants_stops_the_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig, Mode.LIVE)
            kb_id = await write_sg1_approval(rig, sc.run_id)
            before_digest = sc.pins[Pin.WRITER_DIGEST]
            rig.grants.grants = (*rig.grants.grants, "iu:delete")
            after_digest = (await rig.grants.writer_grants()).writer_digest
            sc = await rig.runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.FAILED
        assert sc.stop_code == StopCode.DRIFT == "STOP_DRIFT"
        assert sc.stop is not None
        assert "writer_digest" in sc.stop.message
        assert [(d.pin, d.before, d.after) for d in sc.drift] == [
            ("writer_digest", before_digest, after_digest)
        ]
        assert await rig.store.rows(DOC_ID) == []
        assert await rig.ledger.entries() == []
        assert len(await phase_doc_ids(rig, sc.run_id)) == 5
        assert sc.phases_passed == PHASES[:5]

    async def test_drift_in_the_manifest_stops_the_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg1(rig, Mode.LIVE)
            kb_id = await write_sg1_approval(rig, sc.run_id)
            plan_id = sc.phase_docs[Phase.CUTPLAN]
            doc = await rig.kb.get(plan_id)
            assert isinstance(doc, PhaseDoc)
            assert doc.manifest is not None
            first = msgspec.structs.replace(doc.manifest.ius[0], label="Article 99")
            tampered = msgspec.structs.replace(doc.manifest, ius=(first, *doc.manifest.ius[1:]))
            await rig.kb.put(plan_id, msgspec.structs.replace(doc, manifest=tampered))
            sc = await rig.runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.FAILED
        assert sc.stop_code == StopCode.DRIFT
        assert sc.stop is not None
        assert "manifest_digest" in sc.stop.message
        assert [(d.pin, d.before, d.after) for d in sc.drift] == [
            ("manifest_digest", sc.pins[Pin.MANIFEST_DIGEST], tampered.digest)
        ]
        assert await rig.store.rows(DOC_ID) == []
        assert await rig.ledger.entries() == []
        assert len(await phase_doc_ids(rig, sc.run_id)) == 5

    async def test_drift_at_sg2_in_a_staged_row_stops_the_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await at_sg2(rig, Mode.LIVE)
            rows = await rig.store.rows(DOC_ID)
            assert len(rows) == 12
            rows[3] = msgspec.structs.replace(rows[3], region_sha="cd" * 32)
            await rig.store.restore(Backup(doc_id=DOC_ID, rows=tuple(rows)))
            tampered = await rig.store.rows(DOC_ID)
            ledger = await rig.ledger.entries()
            kb_id = await write_sg2_approval(rig, sc.run_id)
            sc = await rig.runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.FAILED
        assert sc.stop_code == StopCode.DRIFT
        assert sc.stop is not None
        assert "verify_result_id" in sc.stop.message
        assert [d.pin for d in sc.drift] == ["verify_result_id"]
        assert sc.drift[0].before == sc.pins[Pin.VERIFY_RESULT_ID]
        assert sc.drift[0].after != sc.drift[0].before
        # The stop names the staged row that differs from the plan, not only the digest.
        assert sc.drift[0].units == (DriftUnit(label=rows[3].label, change="changed"),)
        assert f"verify_result_id (changed {rows[3].label})" in sc.stop.message
        # Nothing further (no enact, no phase doc past the pause), and leg A's rows,
        # tampered or not, are undone: the document is back to its backup (no rows).
        assert all(r.state is IUState.STAGED for r in tampered)
        assert await rig.store.rows(DOC_ID) == []
        entries = await rig.ledger.entries()
        assert entries[:-1] == ledger
        assert isinstance(entries[-1].envelope, RollbackEnvelope)
        assert len(await phase_doc_ids(rig, sc.run_id)) == 9
        assert Phase.LIFECYCLE_ENACT not in sc.phases_passed

    async def test_after_a_drift_stop_nothing_further_is_written(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path, store=InMemoryIUStore([OLD_ROW]))
        async with rig.runner:
            sc = await at_sg1(rig, Mode.LIVE)
            kb_id = await write_sg1_approval(rig, sc.run_id)
            rig.grants.grants = ("iu:insert",)
            stopped = await rig.runner.resume(sc.run_id, kb_id)
            assert stopped.stop_code == StopCode.DRIFT
            files = rig.stored()
            # Restoring the grants does not revive a drifted run.
            rig.grants.grants = REQUIRED_GRANTS
            with pytest.raises(RunNotResumable):
                await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            again = await rig.runner.status(sc.run_id)
        assert again == stopped
        assert await rig.store.rows(DOC_ID) == [OLD_ROW]
        assert await rig.ledger.entries() == []
        assert await phase_doc_ids(rig, sc.run_id) == [stopped.phase_docs[p] for p in PHASES[:5]]
        after = rig.stored()
        new_docs = set(after.pop("kb_docs")) - set(files.pop("kb_docs"))
        assert after == files  # no run, consumption or kill-switch row changed
        assert all(row[0].startswith("approvals/") for row in new_docs), new_docs
