"""The recorder saves compare-and-save: no read before a write, and a walker holding a
stale copy is refused by the store (``RunChanged``), however the two interleave."""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio
import pytest

from cutter.core.errors import RunChanged
from cutter.core.kbdocs import Decision
from cutter.core.ports import RunStore
from cutter.core.route import Phase
from cutter.core.sidecar import ApprovalUse, Sidecar
from cutter.core.states import RunState
from cutter.runtime.logs import get_logger
from cutter.stores.memory.records import InMemoryRunStore
from cutter.walk.recorder import RunRecorder
from tests._harness import PAUSED_AT, paused_sidecar

pytestmark = pytest.mark.anyio

APPROVAL = "approvals/run-a/SG_1-alice"


def clock() -> datetime:
    return PAUSED_AT + timedelta(minutes=1)


def recorder(store: RunStore) -> RunRecorder:
    return RunRecorder(store, clock, get_logger(run_id="run-a"))


def use() -> ApprovalUse:
    return ApprovalUse(
        approval_kb_id=APPROVAL,
        approver="alice",
        decision=Decision.APPROVE,
        peer=None,
        consumed_at=PAUSED_AT,
    )


class CountingStore(InMemoryRunStore):
    """Counts the reads the recorder makes."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load(self, run_id: str) -> Sidecar:
        self.loads += 1
        return await super().load(run_id)


async def test_the_recorder_saves_without_reading_the_run_first() -> None:
    store = CountingStore()
    held = paused_sidecar("run-a")
    await store.create(held)
    rec = recorder(store)
    amended = await rec.amend(held, phases_passed=(*held.phases_passed, Phase.CUTPLAN))
    moved = await rec.consume(amended, use(), RunState.RUNNING, stop=None)
    halted = await rec.move(moved, RunState.HALTED)
    assert store.loads == 0
    assert [s.revision for s in (held, amended, moved, halted)] == [0, 1, 2, 3]
    assert await store.load("run-a") == halted
    assert await store.consumed_by(APPROVAL) == "run-a"


class Order:
    """Two walkers on one store, ordered by events: B reaches the store (its check or
    its save) first, then A saves, then B goes on. Load-then-save let B's check pass
    before A's save and then wrote over A; compare-and-save refuses B."""

    def __init__(self) -> None:
        self.b_reached = anyio.Event()
        self.a_saved = anyio.Event()


class WalkerA(InMemoryRunStore):
    def __init__(self, inner: InMemoryRunStore, order: Order) -> None:
        self.inner, self.order = inner, order

    async def load(self, run_id: str) -> Sidecar:
        return await self.inner.load(run_id)

    async def save(self, sidecar: Sidecar) -> None:
        await self.order.b_reached.wait()
        await self.inner.save(sidecar)
        self.order.a_saved.set()


class WalkerB(InMemoryRunStore):
    def __init__(self, inner: InMemoryRunStore, order: Order) -> None:
        self.inner, self.order = inner, order

    async def load(self, run_id: str) -> Sidecar:
        loaded = await self.inner.load(run_id)
        self.order.b_reached.set()
        await self.order.a_saved.wait()
        return loaded

    async def save(self, sidecar: Sidecar) -> None:
        self.order.b_reached.set()
        await self.order.a_saved.wait()
        await self.inner.save(sidecar)


async def test_a_walker_whose_copy_went_stale_while_it_saved_is_refused() -> None:
    store = InMemoryRunStore()
    held = paused_sidecar("run-a")
    await store.create(held)
    order = Order()
    outcome: dict[str, Sidecar | RunChanged] = {}

    async def walk(name: str, rec: RunRecorder, started_by: str) -> None:
        try:
            outcome[name] = await rec.amend(held, started_by=started_by)
        except RunChanged as exc:
            outcome[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(walk, "a", recorder(WalkerA(store, order)), "walker a")
        tg.start_soon(walk, "b", recorder(WalkerB(store, order)), "walker b")
    assert isinstance(outcome["b"], RunChanged), outcome["b"]
    assert outcome["b"].code == "E_RUN_CHANGED"
    assert await store.load("run-a") == outcome["a"]
    assert (await store.load("run-a")).started_by == "walker a"
