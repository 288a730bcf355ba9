"""The Runner API: cut, resume, status, modes, the kill switch, and a phase that crashes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import cutter.core.mode
import cutter.walk.phases
from cutter import Mode, RunState, StopCode
from cutter.core.errors import (
    InvalidIdentifier,
    KillSwitchEngaged,
    ProductionExecutionNotAuthorized,
    RunNotResumable,
    StopApprovalRequired,
    UnknownRun,
)
from cutter.core.kbdocs import PhaseDoc, StopDoc, stop_doc_id
from cutter.core.ledger import CutEnvelope, verify_chain
from cutter.core.records import IUState
from cutter.core.route import PHASES, Gate, Phase, Pin
from cutter.walk.phases import PhaseContext, PhaseOutput
from cutter.walk.runner import Runner
from tests._harness import (
    DOC_ID,
    OPERATOR,
    SV_ID,
    build_runner,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio

HOSTILE_IDS = ["../x", "a/b", "\x00", "x" * 300, ""]


async def boom(ctx: PhaseContext) -> PhaseOutput:
    raise RuntimeError("boom")


class TestRunner:
    async def test_cut_returns_the_sidecar_at_sg1(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            assert await rig.runner.status(sc.run_id) == sc
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert sc.stop_code == StopCode.APPROVAL_REQUIRED
        assert sc.mode is Mode.DRY_RUN
        assert sc.doc_id == DOC_ID
        assert sc.started_by == OPERATOR
        assert sc.batch_id is None
        assert sc.phases_passed == PHASES[:5]
        assert sc.pins[Pin.SOURCE_VERSION_ID] == SV_ID
        assert sc.pins[Pin.IU_COUNT] == 12
        assert {Pin.MANIFEST_DIGEST, Pin.REGION_SHA, Pin.WRITER_DIGEST} <= sc.pins.keys()
        gate = sc.pending_gate
        assert gate is not None
        assert gate.gate is Gate.SG_1
        assert gate.uses == ()
        assert await rig.run_store.run_ids() == [sc.run_id]

    async def test_status_of_an_unknown_run(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            with pytest.raises(UnknownRun) as info:
                await rig.runner.status("run-0000000000000000")
            with pytest.raises(UnknownRun):
                await rig.runner.resume("run-0000000000000000")
        assert info.value.run_id == "run-0000000000000000"
        assert rig.stored() == rig.fresh

    @pytest.mark.parametrize("hostile", HOSTILE_IDS)
    @pytest.mark.parametrize("verb", ["status", "resume", "abort"])
    async def test_hostile_run_id_is_refused_before_anything_is_written(
        self, tmp_path: Path, hostile: str, verb: str
    ) -> None:
        rig = build_runner(tmp_path)
        calls: dict[str, Callable[[Runner], Awaitable[object]]] = {
            "status": lambda r: r.status(hostile),
            "resume": lambda r: r.resume(hostile, "approvals/x/SG_1-1"),
            "abort": lambda r: r.abort(hostile, reason="x", by=OPERATOR),
        }
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            files = rig.stored()
            with pytest.raises(InvalidIdentifier):
                await calls[verb](rig.runner)
            assert await rig.runner.runs() == [sc]
        assert rig.stored() == files

    @pytest.mark.parametrize("hostile", HOSTILE_IDS)
    async def test_hostile_doc_id_is_refused_before_anything_is_written(
        self, tmp_path: Path, hostile: str
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            with pytest.raises(InvalidIdentifier):
                await rig.runner.cut(hostile, started_by=OPERATOR)
            with pytest.raises(InvalidIdentifier):
                await rig.runner.cut(DOC_ID, started_by=hostile)
        assert rig.stored() == rig.fresh
        assert rig.disc.calls == 0

    async def test_unknown_document_stops_cleanly(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut("doc-nobody-wrote", started_by=OPERATOR)
        assert sc.state is RunState.FAILED
        assert sc.stop_code == StopCode.DOCUMENT_UNKNOWN
        assert sc.phases_passed == ()
        stop = await rig.kb.get(stop_doc_id(sc.run_id))
        assert isinstance(stop, StopDoc)
        assert stop.code is StopCode.DOCUMENT_UNKNOWN

    async def test_resume_of_a_closeout_reported_run_is_refused(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
            assert sc.state is RunState.CLOSEOUT_REPORTED
            files = rig.stored()
            with pytest.raises(RunNotResumable) as info:
                await rig.runner.resume(sc.run_id)
        assert info.value.state == RunState.CLOSEOUT_REPORTED
        assert rig.stored() == files

    # --- modes ----------------------------------------------------------------------------
    def test_execution_is_disabled_by_default(self) -> None:
        assert cutter.core.mode.__execution_enabled__ is False

    async def test_live_mode_with_execution_off_is_refused_before_anything(
        self, tmp_path: Path
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            with pytest.raises(ProductionExecutionNotAuthorized):
                await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            with pytest.raises(ProductionExecutionNotAuthorized):
                await rig.runner.cut_batch([DOC_ID], Mode.LIVE, started_by=OPERATOR)
        assert await rig.run_store.run_ids() == []
        assert await rig.kb.list("") == []
        assert rig.stored() == rig.fresh
        assert rig.disc.calls == 0
        assert await rig.store.rows(DOC_ID) == []

    async def test_live_walk_commits_twelve_active_ius_and_a_verifiable_ledger(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            staged = await rig.store.rows(DOC_ID)
            assert [r.state for r in staged] == [IUState.STAGED] * 12
            sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
        assert sc.state is RunState.CLOSEOUT_REPORTED
        assert sc.stop is None
        rows = await rig.store.rows(DOC_ID)
        assert len(rows) == 12
        assert all(r.state is IUState.ACTIVE for r in rows)
        assert [r.ordinal for r in rows] == list(range(12))
        assert b"".join(r.body for r in rows) == rig.disc.source
        assert {r.change_set_id for r in rows} == {sc.pins[Pin.CHANGE_SET_ID]}
        entries = await rig.ledger.entries()
        assert verify_chain(entries) == entries[-1].entry_hash
        assert len(entries) == 1
        envelope = entries[0].envelope
        assert isinstance(envelope, CutEnvelope)
        assert envelope.manifest_digest == sc.pins[Pin.MANIFEST_DIGEST]
        assert envelope.iu_count == 12
        assert entries[0].entry_hash == sc.pins[Pin.MANIFEST_ENVELOPE_ID]
        assert await rig.sources.cut_by(SV_ID) == sc.pins[Pin.CHANGE_SET_ID]

    async def test_dry_run_full_walk_commits_nothing_but_reports_what_live_would(
        self, tmp_path: Path
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            assert await rig.store.rows(DOC_ID) == []
            sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
        assert sc.state is RunState.CLOSEOUT_REPORTED
        assert sc.mode is Mode.DRY_RUN
        assert sc.pins[Pin.LIFECYCLE_ENACTED] is True
        assert sc.pins[Pin.LIFECYCLE_ENACTED_COUNT] == 12
        assert sc.pins[Pin.SIDECAR_STATE_FINAL] == "success"
        assert await rig.store.rows(DOC_ID) == []
        assert await rig.ledger.entries() == []
        assert await rig.sources.cut_by(SV_ID) is None
        assert len(await rig.kb.list(f"runs/{sc.run_id}/phases")) == 11

    # --- kill switch ------------------------------------------------------------------------
    async def test_kill_switch_halts_a_live_run_at_the_next_phase_boundary(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
            await rig.kill_switch.engage("test")
            approval = await write_sg1_approval(rig, sc.run_id)
            halted = await rig.runner.resume(sc.run_id, approval)
            assert halted.state is RunState.HALTED
            assert halted.stop_code == StopCode.KILL_SWITCH == "STOP_KILL_SWITCH"
            # The approval was consumed; nothing past the gate was written.
            assert await rig.run_store.consumed_by(approval) == sc.run_id
            sg1 = halted.gate(Gate.SG_1)
            assert sg1 is not None
            assert [u.approval_kb_id for u in sg1.uses] == [approval]
            assert halted.phases_passed == PHASES[:5]
            assert len(await rig.kb.list(f"runs/{sc.run_id}/phases")) == 5
            assert await rig.store.rows(DOC_ID) == []
            assert await rig.ledger.entries() == []

            with pytest.raises(KillSwitchEngaged):
                await rig.runner.resume(sc.run_id)
            assert await rig.run_store.load(sc.run_id) == halted

            await rig.kill_switch.release()
            resumed = await rig.runner.resume(sc.run_id)
        assert resumed.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert resumed.stop_code == StopCode.APPROVAL_REQUIRED
        assert resumed.phases_passed == PHASES[:9]
        rows = await rig.store.rows(DOC_ID)
        assert [r.state for r in rows] == [IUState.STAGED] * 12

    async def test_kill_switch_engaged_before_a_live_cut_halts_before_the_first_phase(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        await rig.kill_switch.engage("maintenance")
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert sc.state is RunState.HALTED
        assert sc.stop_code == StopCode.KILL_SWITCH
        assert sc.phases_passed == ()
        assert await rig.kb.list(f"runs/{sc.run_id}/phases") == []

    # --- a phase that crashes -----------------------------------------------------------------
    async def test_unexpected_exception_in_a_phase_fails_the_run_cleanly(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            with monkeypatch.context() as m:
                m.setitem(cutter.walk.phases.BODIES, Phase.MARK, boom)
                with capture_logs() as logs:
                    sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            assert sc.state is RunState.FAILED
            assert sc.stop_code == StopCode.PHASE_FAILED == "STOP_PHASE_FAILED"
            assert sc.stop is not None
            assert sc.stop.error_id
            assert "\n" not in sc.stop.message
            assert sc.phases_passed == (Phase.SOURCE_PIN,)
            failed = [e for e in logs if e["event"] == "actor_failed"]
            assert [e["error_id"] for e in failed] == [sc.stop.error_id]
            assert failed[0]["error_type"] == "RuntimeError"
            assert failed[0]["exc_info"] is not None
            stop = await rig.kb.get(stop_doc_id(sc.run_id))
            assert isinstance(stop, StopDoc)
            assert stop.error_id == sc.stop.error_id
            for table, rows in rig.stored().items():
                assert "Traceback" not in repr(rows), table

            # The runner keeps serving: a new cut in the same session works.
            again = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            assert again.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert again.run_id != sc.run_id
            mark = await rig.kb.get(again.phase_docs[Phase.MARK])
            assert isinstance(mark, PhaseDoc)
            assert len(mark.candidates) == 12
        assert await rig.run_store.load(sc.run_id) == sc

    async def test_a_typed_refusal_leaves_the_runner_context_unwrapped(
        self, tmp_path: Path
    ) -> None:
        # "A refused resume raises the typed GateRefusal" (cutter/walk/runner.py docstring):
        # a caller catching it around `async with Runner(...)` must get it as such,
        # not wrapped in an ExceptionGroup by the runner's task group.
        rig = build_runner(tmp_path)

        async def session() -> None:
            async with rig.runner:
                sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
                await rig.runner.resume(sc.run_id)

        with pytest.raises(StopApprovalRequired):
            await session()
        (run_id,) = await rig.run_store.run_ids()
        assert (await rig.run_store.load(run_id)).state is RunState.AWAITING_CUT_AUTHORIZATION

    async def test_logs_name_the_run_in_every_transition(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            with capture_logs() as logs:
                sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        changes = [e for e in logs if e["event"] == "run_state_changed"]
        assert [(e["from_state"], e["to_state"]) for e in changes] == [
            ("CREATED", "RUNNING"),
            ("RUNNING", "AWAITING_CUT_AUTHORIZATION"),
        ]
        assert all(e["run_id"] == sc.run_id for e in changes)
        passed = [e["phase"] for e in logs if e["event"] == "phase_passed"]
        assert passed == [p.value for p in PHASES[:5]]
