"""The gate checked where the write happens (issue 11, part 4): leg A and
lifecycle_enact judge their gate again from the policy, the KB and the consumption
records, so an edited sidecar, a hand-written approval or a signature by a key the
policy does not list lets no LIVE run write a row (embedded SQLite stores)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import cutter.core.mode
from cutter.core.codec import encode_sidecar
from cutter.core.errors import StopCode
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.records import IUState
from cutter.core.sidecar import ApprovalUse, Sidecar, replace_gate
from cutter.core.states import RunState
from tests._harness import (
    DOC_ID,
    OPERATOR,
    REVIEWER,
    Rig,
    build_runner,
    write_sg1_approval,
    write_sg2_approval,
)
from tests._revision import next_revision
from tests.test_signed_approvals import Key, make_key, policy_text, set_policy, write_signed

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)


def edit_sidecar(rig: Rig, run_id: str, old: bytes, new: bytes) -> None:
    """What someone with write access to the state directory does: edit the bytes."""
    data = rig.stored_sidecar(run_id)
    assert data.count(old) == 1, data
    rig.overwrite_sidecar(run_id, data.replace(old, new))


def forge_use(rig: Rig, sidecar: Sidecar, kb_id: str) -> None:
    """Record a use of ``kb_id`` at the open gate in the stored sidecar, as if the
    gatekeeper had consumed it (it never did)."""
    gate = sidecar.pending_gate
    assert gate is not None
    use = ApprovalUse(
        approval_kb_id=kb_id,
        approver=REVIEWER,
        decision=Decision.APPROVE,
        peer=None,
        consumed_at=rig.clock(),
    )
    forged = msgspec.structs.replace(gate, uses=(use,))
    edited = msgspec.structs.replace(sidecar, gates=replace_gate(sidecar, forged))
    rig.overwrite_sidecar(sidecar.run_id, encode_sidecar(edited))


async def active_rows(rig: Rig) -> list[str]:
    return [r.iu_id for r in await rig.store.rows(DOC_ID) if r.state is IUState.ACTIVE]


def assert_stopped_at_the_gate(sc: Sidecar) -> None:
    assert sc.state is RunState.FAILED, sc.stop
    assert sc.stop is not None
    assert sc.stop.code is StopCode.GATE_NOT_PASSED, sc.stop


async def test_sg1_required_approvals_edited_to_zero_writes_no_row(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
        edit_sidecar(rig, sc.run_id, b'"required_approvals":1', b'"required_approvals":0')
        sc = await rig.runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert "requires 1 distinct approvers, the run has 0" in sc.stop.message  # type: ignore[union-attr]
    assert await rig.store.rows(DOC_ID) == []


async def test_sg2_required_approvals_edited_to_zero_enacts_nothing(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
        assert await rig.store.rows(DOC_ID) != []  # leg A staged the rows
        # Only SG_2's record is edited: SG_1's was consumed honestly.
        data = rig.stored_sidecar(sc.run_id)
        head, sep, tail = data.rpartition(b'"required_approvals":1')
        assert sep
        rig.overwrite_sidecar(sc.run_id, head + b'"required_approvals":0' + tail)
        sc = await rig.runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert sc.stop.message.startswith("SG_2 is not passed")  # type: ignore[union-attr]
    assert await active_rows(rig) == []
    assert await rig.store.rows(DOC_ID) == []  # leg A's rows were undone


async def test_a_hand_written_approval_recorded_in_the_sidecar_writes_no_row(
    tmp_path: Path,
) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        kb_id = await write_sg1_approval(rig, sc.run_id)  # dropped into the KB
        forge_use(rig, sc, kb_id)
        sc = await rig.runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert f"approval {kb_id} was not consumed by this run" in sc.stop.message  # type: ignore[union-attr]
    assert await rig.store.rows(DOC_ID) == []


async def test_a_use_naming_no_approval_doc_writes_no_row(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        forge_use(rig, sc, f"approvals/{sc.run_id}/SG_1-never-written")
        sc = await rig.runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert await rig.store.rows(DOC_ID) == []


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Key]:
    return {name: make_key(tmp_path / "keys", name) for name in ("bob", "mallory")}


async def test_an_approval_signed_by_an_unlisted_key_and_consumed_writes_no_row(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    """Everything forged that file access can forge — the approval, the sidecar's use
    and the consumption record — but the signature is by a key the policy does not list."""
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]))
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        kb_id = await write_signed(rig, sc.run_id, keys["mallory"])
        gate = sc.pending_gate
        assert gate is not None
        use = ApprovalUse(
            approval_kb_id=kb_id,
            approver=REVIEWER,
            decision=Decision.APPROVE,
            peer=None,
            consumed_at=rig.clock(),
        )
        forged = msgspec.structs.replace(
            sc,
            state=RunState.RUNNING,
            stop=None,
            gates=replace_gate(sc, msgspec.structs.replace(gate, uses=(use,))),
        )
        await rig.run_store.save_consuming(next_revision(forged), use)
        assert await rig.run_store.consumed_by(kb_id) == sc.run_id
        sc = await rig.runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert "no policy key of" in sc.stop.message  # type: ignore[union-attr]
    assert await rig.store.rows(DOC_ID) == []


async def test_an_honest_signed_run_passes_leg_a(tmp_path: Path, keys: dict[str, Key]) -> None:
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]))
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        sc = await rig.runner.resume(sc.run_id, await write_signed(rig, sc.run_id, keys["bob"]))
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
    assert len(await rig.store.rows(DOC_ID)) == 12


@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.DRY_RUN])
async def test_an_honest_run_still_closes(tmp_path: Path, mode: Mode) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, mode, started_by=OPERATOR)
        sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
    assert sc.state is RunState.CLOSEOUT_REPORTED, sc.stop
    assert len(await active_rows(rig)) == (12 if mode is Mode.LIVE else 0)


async def test_a_policy_raised_after_consumption_stops_the_write(tmp_path: Path) -> None:
    """The rule is the policy's at the write, not the one the sidecar copied at the gate."""
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
        await set_policy(rig, 'admins = ["root"]\n[sg_2]\nrequired_approvals = 2\n')
        # SG_2 opened when the policy said 1, and its record in the sidecar still does.
        sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
    assert_stopped_at_the_gate(sc)
    assert await active_rows(rig) == []
