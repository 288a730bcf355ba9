"""A paused run holds nothing in memory (docs/architecture.md, "A walk segment"):
once ``cut`` or ``resume`` returns a run waiting at a gate, its supervisor, phase
actors and gatekeeper are gone, and so are their tasks and mailboxes. Only the
persisted sidecar remains, which is why a resume may happen in another process."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from actors.cell import ActorCell
from actors.mailbox import Mailbox
from cutter.core.states import RunState
from cutter.walk.runner import Runner
from tests._harness import DOC_ID, build_runner, write_sg1_approval

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Held:
    registered_actors: int  # the runner's actor system: roots and their children, down
    actor_cells: int  # every actor cell still alive, registered or not
    open_mailboxes: int  # actor mailboxes not closed
    tasks: frozenset[asyncio.Task[object]]


async def held(runner: Runner) -> Held:
    # Let the loop run what it has scheduled already (a finished task's done
    # callback still refers to its result until then), then count.
    await anyio.wait_all_tasks_blocked()
    gc.collect()
    system = runner._system
    assert system is not None
    pending, registered = list(system._roots.values()), 0
    while pending:
        ref = pending.pop()
        registered += 1
        pending.extend(ref._cell.child_refs.values())
    objects = gc.get_objects()
    return Held(
        registered_actors=registered,
        actor_cells=sum(isinstance(o, ActorCell) for o in objects),
        open_mailboxes=sum(isinstance(o, Mailbox) and not o.closed for o in objects),
        tasks=frozenset(asyncio.all_tasks()),
    )


async def test_a_run_paused_at_either_gate_holds_no_actor_task_or_mailbox(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        before = await held(rig.runner)
        assert before.registered_actors == 0

        sc = await rig.runner.cut(DOC_ID)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert await held(rig.runner) == before

        sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert await held(rig.runner) == before


async def test_runs_paused_together_hold_nothing_either(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    for doc_id in ("doc-b", "doc-c"):
        rig.sources.seed(doc_id, rig.disc.source, sv_id=f"sv-{doc_id}")
    async with rig.runner:
        before = await held(rig.runner)
        paused = await rig.runner.cut_batch([DOC_ID, "doc-b", "doc-c"])
        assert {sc.state for sc in paused} == {RunState.AWAITING_CUT_AUTHORIZATION}
        assert await held(rig.runner) == before
