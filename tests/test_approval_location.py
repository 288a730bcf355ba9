"""The gate reads approvals only from ``approvals/`` and ``db-approvals/``
(``cutter.core.control_docs``): on PostgreSQL the IU writer's login can write every other KB
doc, so an ``Approval`` anywhere else proves nothing. The same approval, copied
anywhere else, is refused APPROVAL_NOT_FOUND and never consumed; at the write, a use
of one recorded in the sidecar stops the run."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import cutter.core.mode
from cutter import Mode, RunState, StopCode
from cutter.core.errors import ApprovalNotFound
from cutter.core.kbdocs import Approval
from cutter.core.route import Gate
from cutter.core.sidecar import ApprovalUse, replace_gate
from cutter.walk.runner import utc_now
from tests._harness import DOC_ID, OPERATOR, REVIEWER, build_runner, write_approval
from tests._revision import next_revision
from tests.test_gate_invariants import assert_refused, at_sg1

pytestmark = pytest.mark.anyio

ELSEWHERE = ["runs/{run}/approval", "elsewhere/{run}", "approvals-{run}/x", "policy/{run}"]


@pytest.mark.parametrize("where", ELSEWHERE)
async def test_an_approval_outside_approvals_is_not_consumed(tmp_path: Path, where: str) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await at_sg1(rig)
        real = await rig.kb.get(await write_approval(rig, sc.run_id, Gate.SG_1))
        assert isinstance(real, Approval)
        copy = where.format(run=sc.run_id)
        await rig.kb.put(copy, real)
        refused = await assert_refused(rig, sc.run_id, copy, ApprovalNotFound)
        assert "approvals/" in refused.message


async def test_a_recorded_use_of_one_stops_the_run_before_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    rig = build_runner(tmp_path)
    async with rig.runner:
        before = await rig.store.rows(DOC_ID)
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        real = await rig.kb.get(await write_approval(rig, sc.run_id, Gate.SG_1))
        assert isinstance(real, Approval)
        copy = f"runs/{sc.run_id}/approval"
        await rig.kb.put(copy, real)
        # Consumed by this run and recorded: all but where it lies is in order.
        use = ApprovalUse(
            approval_kb_id=copy,
            approver=REVIEWER,
            decision=real.decision,
            peer=None,
            consumed_at=utc_now(),
        )
        sc = next_revision(sc)  # the consumption saved the run as it was
        await rig.run_store.save_consuming(sc, use)
        gate = sc.pending_gate
        assert gate is not None
        forged = msgspec.structs.replace(
            sc,
            state=RunState.RUNNING,
            stop=None,
            gates=replace_gate(sc, msgspec.structs.replace(gate, uses=(use,))),
        )
        await rig.run_store.save(next_revision(forged))
        after = await rig.runner.resume(sc.run_id)
    assert after.state is RunState.FAILED
    assert after.stop is not None
    assert after.stop.code is StopCode.GATE_NOT_PASSED
    assert "approvals/" in after.stop.message
    assert await rig.store.rows(DOC_ID) == before
