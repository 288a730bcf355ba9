"""kill -9 during a revert, at every failpoint it reaches (docs/revert.md).

A live cut of the sample is closed out on the embedded database (once, then copied
for each case). Its revert is walked — start to SG_1, SG_1's approval to SG_2,
SG_2's approval to the end — each step in-process except the one that reaches the
failpoint, which runs in a child process that ``os._exit(137)``s there exactly like
``kill -9`` (``cutter.runtime.failpoints``). A new runner on the same database then
recovers (``Runner.recover``, what a restarted daemon does) and the walk is
finished. The end state must be the uninterrupted revert's: the same rows, the same
ledger (byte for byte: the revert has the same run id in every case), the same
sidecar state and pins, the version's cut mark cleared, the ledger verifying
against its anchors, exactly two approvals consumed. A reject at SG_2 killed at each
failpoint of its undo ends as an undo nobody interrupted: the cut's rows, and one
rollback envelope.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from cutter.cli.ledger import verify_stores
from cutter.core.errors import UnknownRun
from cutter.core.kbdocs import Decision
from cutter.core.ledger import LedgerEntry, RollbackEnvelope
from cutter.core.mode import Mode
from cutter.core.records import IURow
from cutter.core.route import PHASES, Gate, Phase, Pin
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.runtime.failpoints import ENV as FAILPOINT_ENV
from tests._harness import OPERATOR, write_approval
from tests._restore import SAMPLE, World, in_world

pytestmark = pytest.mark.subprocess

REVERT_ID = "run-revert00000000ab"

# The child: one step of the revert on the state directory, nothing else.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import anyio

    from cutter import Mode, Runner, embedded_config
    from cutter.core.mode import enable_execution

    async def main() -> None:
        enable_execution()
        state, action, subject, arg = sys.argv[1:5]
        async with embedded_config(Path(state)) as config, Runner(config) as runner:
            if action == "revert":
                await runner.revert(subject, Mode.LIVE, started_by="operator-ann", run_id=arg)
            else:
                await runner.resume(subject, arg)

    anyio.run(main)
    """
)

_INSIDE = {
    Phase.CUT_LEG_A: ("leg_a:mid",),
    Phase.LEG_B_RECORD: ("leg_b:appended",),
    Phase.LIFECYCLE_ENACT: ("enact:mid",),
}


def step_of(phase: Phase) -> int:
    """The step of the walk a phase runs in: 0 start, 1 SG_1's approval, 2 SG_2's."""
    index = PHASES.index(phase)
    if index < PHASES.index(Phase.CUT_LEG_A):
        return 0
    return 1 if index < PHASES.index(Phase.LIFECYCLE_ENACT) else 2


# (failpoint, the step that reaches it), in walk order.
FAILPOINTS: tuple[tuple[str, int], ...] = tuple(
    (point, step_of(phase))
    for phase in PHASES
    for point in (
        *(("consume:committed",) if phase in (Phase.CUT_LEG_A, Phase.LIFECYCLE_ENACT) else ()),
        f"before:{phase.value}",
        *_INSIDE.get(phase, ()),
        f"after:{phase.value}",
    )
)
UNDO_POINTS = ("undo:pending", "undo:restored", "undo:recorded")


def test_the_matrix_covers_every_failpoint_a_revert_reaches() -> None:
    # Two per phase, one inside each writing phase (a revert's leg A writes no rows,
    # so there is no leg_a:written), one consumption per gate.
    assert len(FAILPOINTS) == 2 * len(PHASES) + 3 + 2 == 27


@dataclass(frozen=True)
class EndState:
    state: RunState
    pins: dict[Pin, Any]
    rows: list[IURow]
    ledger: list[LedgerEntry]
    cut_by: str | None
    consumed: int


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sidecar]:
    """A state directory holding one closed-out live cut of the sample."""
    root = tmp_path_factory.mktemp("cut")

    async def cut(world: World) -> Sidecar:
        await world.publish(SAMPLE)
        return await world.cut()

    return root, in_world(root, cut)


def _child(state_dir: Path, point: str, action: str, subject: str, arg: str) -> int:
    env = {**os.environ, FAILPOINT_ENV: point}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(state_dir), action, subject, arg],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 137), done.stderr.decode()[-2000:]
    return done.returncode


def _next(state_dir: Path, cut_id: str, decision: Decision) -> tuple[str, str, str] | None:
    """The next step of the revert (action, subject, arg), its approval written; None
    when the revert ended."""

    async def look(world: World) -> tuple[str, str, str] | None:
        try:
            sc = await world.runner.status(REVERT_ID)
        except UnknownRun:
            return ("revert", cut_id, REVERT_ID)
        if sc.state is RunState.AWAITING_CUT_AUTHORIZATION:
            gate, chosen = Gate.SG_1, Decision.APPROVE
        elif sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION:
            gate, chosen = Gate.SG_2, decision
        else:
            return None
        fields: dict[str, Any] = {"decision": chosen}
        if gate is Gate.SG_2:
            fields["review_decision_id"] = f"review-{REVERT_ID}"
        kb_id = await write_approval(world.approver, REVERT_ID, gate, **fields)
        return ("resume", REVERT_ID, kb_id)

    result: tuple[str, str, str] | None = in_world(state_dir, look)
    return result


def _in_process(state_dir: Path, action: str, subject: str, arg: str) -> None:
    async def go(world: World) -> None:
        if action == "revert":
            await world.runner.revert(subject, Mode.LIVE, started_by=OPERATOR, run_id=arg)
        else:
            await world.runner.resume(subject, arg)

    in_world(state_dir, go)


def _recover(state_dir: Path) -> None:
    async def go(world: World) -> None:
        await world.runner.recover()

    in_world(state_dir, go)


def walk(
    state_dir: Path,
    cut: Sidecar,
    point: str | None = None,
    at_step: int | None = None,
    decision: Decision = Decision.APPROVE,
) -> EndState:
    """The revert of ``cut`` walked to its end, the step ``at_step`` (by count of
    steps taken) in a child armed with ``point``; the end state."""
    died = False
    for step in range(8):
        nxt = _next(state_dir, cut.run_id, decision)
        if nxt is None:
            break
        if point is not None and not died and step == at_step:
            assert _child(state_dir, point, *nxt) == 137, f"{point} was not reached"
            died = True
            _recover(state_dir)
        else:
            _in_process(state_dir, *nxt)
    assert point is None or died

    async def read(world: World) -> EndState:
        sc = await world.runner.status(REVERT_ID)
        sv_id = str(cut.pins[Pin.SOURCE_VERSION_ID])
        return EndState(
            state=sc.state,
            pins=dict(sc.pins),
            rows=await world.rows(),
            ledger=await world.config.target.ledger.entries(),
            cut_by=await world.config.target.sources.cut_by(sv_id),
            consumed=len(await world.config.run_store.consumed_for(REVERT_ID)),
        )

    end: EndState = in_world(state_dir, read)
    report = anyio.run(verify_stores, state_dir, None)
    assert report.ok, report
    return end


def _copy(template: tuple[Path, Sidecar], tmp_path: Path) -> Path:
    state = tmp_path / "state"
    shutil.copytree(template[0], state)
    return state


@pytest.fixture(scope="module")
def uninterrupted(
    template: tuple[Path, Sidecar], tmp_path_factory: pytest.TempPathFactory
) -> EndState:
    end = walk(_copy(template, tmp_path_factory.mktemp("once")), template[1])
    assert end.state is RunState.CLOSEOUT_REPORTED
    assert end.rows == []  # the sample's first cut, reverted: no rows
    assert end.cut_by is None
    assert end.consumed == 2
    return end


@pytest.mark.parametrize(("point", "step"), FAILPOINTS, ids=[f"{p}-{s}" for p, s in FAILPOINTS])
def test_kill_9_during_a_revert_ends_as_an_uninterrupted_revert(
    template: tuple[Path, Sidecar],
    uninterrupted: EndState,
    tmp_path: Path,
    point: str,
    step: int,
) -> None:
    end = walk(_copy(template, tmp_path), template[1], point, step)
    assert end == uninterrupted


@pytest.mark.parametrize("point", UNDO_POINTS)
def test_kill_9_while_a_rejected_revert_is_undone_ends_undone(
    template: tuple[Path, Sidecar], tmp_path: Path, point: str
) -> None:
    cut_rows = in_world(template[0], lambda world: world.rows())
    end = walk(_copy(template, tmp_path), template[1], point, 2, Decision.REJECT)
    assert end.state is RunState.REJECTED
    assert end.rows == cut_rows
    assert end.cut_by == template[1].pins[Pin.CHANGE_SET_ID]
    rollbacks = [e for e in end.ledger if isinstance(e.envelope, RollbackEnvelope)]
    assert len(rollbacks) == 1
    assert rollbacks[0].envelope.run_id == REVERT_ID
