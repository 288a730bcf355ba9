"""``Sidecar.waiting_gate``: the one way to say "this run waits at no gate"."""

from __future__ import annotations

import msgspec
import pytest

from cutter.core.errors import RunNotAtGate
from cutter.core.route import Gate
from cutter.core.states import RunState
from tests._harness import Paused

pytestmark = pytest.mark.anyio


async def test_a_run_at_a_gate_gives_its_gate(rig_at_sg1: Paused) -> None:
    run = rig_at_sg1.run
    assert run.waiting_gate("unused") is run.pending_gate
    assert run.waiting_gate("unused").gate is Gate.SG_1


@pytest.mark.parametrize("state", [RunState.RUNNING, RunState.ABORTED, RunState.CLOSEOUT_REPORTED])
async def test_a_run_at_no_gate_is_refused_saying_what_cannot_happen(
    rig_at_sg1: Paused, state: RunState
) -> None:
    run = msgspec.structs.replace(rig_at_sg1.run, state=state)
    with pytest.raises(RunNotAtGate) as refused:
        run.waiting_gate("nothing to review")
    assert refused.value.run_id == run.run_id
    assert refused.value.message == (
        f"run {run.run_id} is {state.value} and waits at no gate: nothing to review"
    )
