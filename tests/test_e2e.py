"""End-to-end walks through both sovereign gates (the seed's O2 e2e classes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

import cutter.core.mode
from cutter import Mode, RunState, StopCode
from cutter.core.errors import (
    ApprovalConsumedAlready,
    ApprovalStale,
    ApprovalWrongGate,
    ProductionExecutionNotAuthorized,
    RunNotResumable,
    StopApprovalRequired,
)
from cutter.core.kbdocs import PhaseDoc, RunsIndexEntry, SovereignRequest, StopDoc
from cutter.core.route import PHASES, Gate, Pin
from cutter.runtime.logs import TRANSITION_EVENTS
from tests._harness import (
    DOC_ID,
    OPERATOR,
    SV_ID,
    Rig,
    build_runner,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio

FIRST_FIVE = PHASES[:5]
NEXT_FOUR = PHASES[5:9]


async def kb_texts(rig: Rig) -> list[str]:
    return [(rig.stored_kb_doc(k) or b"").decode() for k in await rig.kb.list("")]


class TestKillSwitchOff:
    def test_kill_switch_remains_off_by_default(self) -> None:
        assert cutter.core.mode.__execution_enabled__ is False

    async def test_live_mode_refused(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            with pytest.raises(ProductionExecutionNotAuthorized):
                await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert await rig.run_store.run_ids() == []
        assert await rig.kb.list("") == []

    async def test_live_resume_refused_once_switch_is_off_again(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            approval = await write_sg1_approval(rig, sc.run_id)
            monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", False)
            with pytest.raises(ProductionExecutionNotAuthorized):
                await rig.runner.resume(sc.run_id, approval)
            assert await rig.runner.status(sc.run_id) == sc
            assert await rig.store.rows(DOC_ID) == []


class TestE2EHappyPath:
    async def test_full_walk_through_two_sovereign_gates_to_closeout(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path, n_candidates=12)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            # after_initial_cut (stop at SG_1)
            assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert sc.stop_code == StopCode.APPROVAL_REQUIRED == "STOP_APPROVAL_REQUIRED"
            assert sc.phases_passed == FIRST_FIVE
            assert {Pin.MANIFEST_DIGEST, Pin.REGION_SHA, Pin.WRITER_DIGEST} <= sc.pins.keys()
            assert sc.pins[Pin.SOURCE_VERSION_ID] == SV_ID

            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            # after_resume_with_sg1 (stop at SG_2)
            assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
            assert sc.stop_code == "STOP_APPROVAL_REQUIRED"
            assert sc.phases_passed == FIRST_FIVE + NEXT_FOUR
            pins_added = {Pin.CHANGE_SET_ID, Pin.MANIFEST_ENVELOPE_ID, Pin.VERIFY_RESULT_ID}
            assert pins_added <= sc.pins.keys()

            sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
            # after_resume_with_sg2 (closeout)
            assert sc.state is RunState.CLOSEOUT_REPORTED
            assert sc.stop_code is None
            assert sc.phases_passed == PHASES
            assert sc.pins[Pin.LIFECYCLE_ENACTED] is True
            assert sc.pins[Pin.LIFECYCLE_ENACTED_COUNT] == 12
            assert sc.pins[Pin.ALL_PHASE_DOCS_UPLOADED] is True
            assert sc.pins[Pin.SIDECAR_STATE_FINAL] == "success"
            # a dry run: the target store holds nothing
            assert await rig.store.rows(DOC_ID) == []
            assert await rig.ledger.entries() == []
            assert await rig.sources.cut_by(SV_ID) is None

    async def test_resume_idempotency(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            sg1 = await write_sg1_approval(rig, sc.run_id)
            at_sg2 = await rig.runner.resume(sc.run_id, sg1)
            # the same approval again: refused, the run unchanged
            with pytest.raises(ApprovalConsumedAlready):
                await rig.runner.resume(sc.run_id, sg1)
            assert await rig.runner.status(sc.run_id) == at_sg2
            done = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
            docs_before = await kb_texts(rig)
            with pytest.raises(RunNotResumable):
                await rig.runner.resume(sc.run_id)
            assert await rig.runner.status(sc.run_id) == done
            assert await kb_texts(rig) == docs_before


class TestApprovalRequiredOnResume:
    async def test_resume_without_approval_at_sg1_raises(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            with pytest.raises(StopApprovalRequired):
                await rig.runner.resume(sc.run_id, approval_kb_id=None)
            assert await rig.runner.status(sc.run_id) == sc

    async def test_resume_with_wrong_gate_approval_raises(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            wrong = await write_sg2_approval(rig, sc.run_id)
            with pytest.raises(ApprovalWrongGate):
                await rig.runner.resume(sc.run_id, wrong)
            assert await rig.runner.status(sc.run_id) == sc

    async def test_resume_with_stale_approval_raises(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            first = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            gate = first.pending_gate
            assert gate is not None
            # an approval for an earlier pause: same run, an older request's nonce
            stale = await write_sg1_approval(rig, first.run_id, nonce="0" * 32)
            with pytest.raises(ApprovalStale):
                await rig.runner.resume(first.run_id, stale)
            assert await rig.runner.status(first.run_id) == first


class TestApprovalConsumedExactlyOnce:
    async def test_same_approval_kb_id_refused_on_second_use(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            sg1 = await write_sg1_approval(rig, sc.run_id)
            await rig.runner.resume(sc.run_id, sg1)
            with pytest.raises(ApprovalConsumedAlready) as caught:
                await rig.runner.resume(sc.run_id, sg1)
            assert caught.value.approval_kb_id == sg1

    async def test_consumed_approval_refused_after_restart(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            sg1 = await write_sg1_approval(rig, sc.run_id)
            at_sg2 = await rig.runner.resume(sc.run_id, sg1)
        run_id = sc.run_id
        del rig, sc  # drop every object: only the state directory remains
        fresh = build_runner(tmp_path)
        async with fresh.runner:
            assert await fresh.runner.status(run_id) == at_sg2
            with pytest.raises(ApprovalConsumedAlready):
                await fresh.runner.resume(run_id, sg1)
            assert await fresh.runner.status(run_id) == at_sg2


class TestUnknownDocumentStop:
    async def test_unknown_document_stops_with_clean_code(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut("doc-nobody-knows", started_by=OPERATOR)
        assert sc.state is RunState.FAILED
        assert sc.stop_code == "STOP_DOCUMENT_UNKNOWN"
        assert sc.stop is not None
        assert "doc-nobody-knows" in sc.stop.message
        assert sc.phases_passed == ()
        stop_doc = await rig.kb.get(f"runs/{sc.run_id}/stop")
        assert isinstance(stop_doc, StopDoc)
        assert stop_doc.code is StopCode.DOCUMENT_UNKNOWN
        stored = rig.stored_sidecar(sc.run_id).decode()
        for text in [stored, *await kb_texts(rig)]:
            assert "Traceback" not in text
            assert 'File "' not in text


class TestKBArtifactsWrittenForEachPhase:
    async def test_eleven_phase_docs_two_requests_and_runs_index(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
        phase_ids = await rig.kb.list(f"runs/{sc.run_id}/phases")
        assert len(phase_ids) == 11
        docs = [await rig.kb.get(k) for k in phase_ids]
        assert all(isinstance(d, PhaseDoc) for d in docs)
        assert [d.phase for d in docs if isinstance(d, PhaseDoc)] == list(PHASES)
        requests = [await rig.kb.get(k) for k in await rig.kb.list(f"runs/{sc.run_id}/gates")]
        assert [r.subject.gate for r in requests if isinstance(r, SovereignRequest)] == [
            Gate.SG_1,
            Gate.SG_2,
        ]
        entry = await rig.kb.get(f"runs-index/{sc.run_id}")
        assert isinstance(entry, RunsIndexEntry)
        assert entry.state == "CLOSEOUT_REPORTED"
        assert entry.iu_count == 12


class TestStopDriftOnResume:
    async def test_drift_in_source_version_id_is_detected(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            docs_at_pause = await rig.kb.list(f"runs/{sc.run_id}/phases")
            # a new edit of the document during the pause: a new version id
            rig.sources.seed(DOC_ID, rig.disc.source, sv_id="sv-charter-001-v2")
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is RunState.FAILED
        assert sc.stop_code == "STOP_DRIFT"
        drifted = {d.pin: (d.before, d.after) for d in sc.drift}
        assert drifted == {"source_version_id": (SV_ID, "sv-charter-001-v2")}
        assert sc.stop is not None
        assert "source_version_id" in sc.stop.message
        # nothing after the pause was written
        assert sc.phases_passed == FIRST_FIVE
        assert await rig.kb.list(f"runs/{sc.run_id}/phases") == docs_at_pause
        assert await rig.store.rows(DOC_ID) == []


class TestTransitionLog:
    async def test_every_transition_of_a_full_walk_is_one_event_in_order(
        self, tmp_path: Path
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            with structlog.testing.capture_logs() as logs:
                sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
                sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
                sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
        assert sc.state is RunState.CLOSEOUT_REPORTED
        seen = [
            (e["event"], e.get("phase") or e.get("gate") or e.get("to_state"))
            for e in logs
            if e["event"] in TRANSITION_EVENTS
        ]
        assert all(e["run_id"] == sc.run_id for e in logs if e["event"] in TRANSITION_EVENTS)

        def walk(phases: tuple[object, ...]) -> list[tuple[str, object]]:
            out: list[tuple[str, object]] = []
            for p in phases:
                out += [("phase_started", p), ("phase_passed", p)]
            return out

        expected = [
            ("run_state_changed", "RUNNING"),
            *walk(FIRST_FIVE),
            ("run_state_changed", "AWAITING_CUT_AUTHORIZATION"),
            ("gate_opened", "SG_1"),
            ("run_state_changed", "RUNNING"),
            ("approval_consumed", "SG_1"),
            ("gate_closed", "SG_1"),
            *walk(NEXT_FOUR),
            ("run_state_changed", "AWAITING_LIFECYCLE_AUTHORIZATION"),
            ("gate_opened", "SG_2"),
            ("run_state_changed", "RUNNING"),
            ("approval_consumed", "SG_2"),
            ("gate_closed", "SG_2"),
            *walk(PHASES[9:]),
            ("run_state_changed", "CLOSEOUT_REPORTED"),
        ]
        assert seen == expected


class TestAlreadyCutStop:
    async def test_a_version_already_cut_stops_at_source_pin_before_any_gate(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
            assert sc.state is RunState.CLOSEOUT_REPORTED
            rows = await rig.store.rows(DOC_ID)
            again = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert again.state is RunState.FAILED
        assert again.stop_code == "STOP_ALREADY_CUT"
        assert again.stop is not None
        assert str(sc.pins[Pin.CHANGE_SET_ID]) in again.stop.message
        assert again.phases_passed == ()
        assert again.gates == ()
        assert await rig.store.rows(DOC_ID) == rows
