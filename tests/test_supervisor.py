"""``RunSupervisor`` driven directly: spawned in an ``ActorSystem`` on in-memory
stores and asked ``Walk`` / ``Abort`` (told ``Drain``) without a ``Runner``.

The supervisor walks one step per message, so an ``Abort`` or a ``Drain`` that
arrives while a phase runs is handled at the next phase boundary. A phase is held
mid-way by a body that waits on an ``anyio.Event``, so "while a phase runs" is
arranged, not raced for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from structlog.testing import capture_logs

import cutter.walk.phases
from actors import ActorSystem
from cutter.core.approvals import GatePolicy
from cutter.core.errors import RunNotAbortable, StopApprovalRequired
from cutter.core.kbdocs import Approval, Decision
from cutter.core.mode import Mode
from cutter.core.ports import Target
from cutter.core.route import PHASES, Gate, Phase
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.stores.memory.records import InMemoryKnowledgeBase, InMemoryRunStore
from cutter.stores.memory.target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.walk.gate_check import PolicyGateVerifier
from cutter.walk.messages import Abort, Drain, Refused, Walk, WalkStopped
from cutter.walk.phases import PhaseContext, PhaseOutput, Services
from cutter.walk.policy_book import default_policy
from cutter.walk.sandbox import sandbox
from cutter.walk.supervisor import RunDeps, RunSupervisor, SupervisorRef
from tests._harness import (
    DOC_ID,
    OPERATOR,
    REVIEWER,
    SD_ID,
    SV_ID,
    FakeClock,
    seed_discoverer,
)

pytestmark = pytest.mark.anyio

Body = Callable[[PhaseContext], Awaitable[PhaseOutput]]


class KillSwitchOff:
    async def engaged(self) -> bool:
        return False


@dataclass
class World:
    """In-memory stores a run's segments share; each segment gets its own deps."""

    run_store: InMemoryRunStore
    kb: InMemoryKnowledgeBase
    target: Target
    clock: FakeClock

    def deps(self, sidecar: Sidecar, phase_timeout: float = 60.0) -> RunDeps:
        policy = GatePolicy()
        return RunDeps(
            services=Services(
                target=sandbox(self.target) if sidecar.mode is Mode.DRY_RUN else self.target,
                kb=self.kb,
                discoverer=seed_discoverer(),
                grants=StaticGrantProbe(),
                clock=self.clock,
                gates=PolicyGateVerifier(
                    kb=self.kb,
                    consumption=self.run_store,
                    fallback=default_policy(policy, owner="-"),
                ),
            ),
            run_store=self.run_store,
            kill_switch=KillSwitchOff(),
            policy=policy,
            phase_timeout=phase_timeout,
        )

    async def new_run(self) -> Sidecar:
        now = self.clock()
        sidecar = Sidecar(
            run_id="run-direct-1",
            doc_id=DOC_ID,
            mode=Mode.DRY_RUN,
            started_by=OPERATOR,
            created_at=now,
            updated_at=now,
            state=RunState.CREATED,
        )
        await self.run_store.create(sidecar)
        return sidecar

    async def approve(self, sidecar: Sidecar) -> str:
        """An approval of the gate ``sidecar`` waits at, in the KB; its kb_id."""
        gate = sidecar.pending_gate
        assert gate is not None
        kb_id = f"approvals/{sidecar.run_id}/{gate.gate.value}-1"
        await self.kb.put(
            kb_id,
            Approval(
                run_id=sidecar.run_id,
                gate=gate.gate,
                request_digest=gate.request_digest,
                nonce=gate.nonce,
                decision=Decision.APPROVE,
                approver=REVIEWER,
                reason="checked the plan against the source",
                issued_at=self.clock(),
            ),
        )
        return kb_id


@pytest.fixture
def world() -> World:
    disc = seed_discoverer()
    sources = InMemorySources()
    sources.seed(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    return World(
        run_store=InMemoryRunStore(),
        kb=InMemoryKnowledgeBase(),
        target=Target(sources=sources, ius=InMemoryIUStore(), ledger=InMemoryLedger()),
        clock=FakeClock(),
    )


@asynccontextmanager
async def segment(world: World, sidecar: Sidecar, **deps: float) -> AsyncIterator[SupervisorRef]:
    """One walk segment: a supervisor for ``sidecar`` in its own actor system."""
    async with ActorSystem("test") as system:
        ref = await system.spawn(RunSupervisor(sidecar, world.deps(sidecar, **deps)), "run")
        yield ref
        await ref.stop()


class Held:
    """A phase body that waits, once, until released: a phase caught mid-way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, phase: Phase) -> None:
        self.entered = anyio.Event()
        self.release = anyio.Event()
        body: Body = cutter.walk.phases.BODIES[phase]

        async def held(ctx: PhaseContext) -> PhaseOutput:
            self.entered.set()
            await self.release.wait()
            return await body(ctx)

        monkeypatch.setitem(cutter.walk.phases.BODIES, phase, held)


async def walk(ref: SupervisorRef, command: Walk) -> WalkStopped:
    reply = await ref.ask(command, timeout=60)
    assert isinstance(reply, WalkStopped), reply
    return reply


async def at_sg1(world: World) -> Sidecar:
    async with segment(world, await world.new_run()) as ref:
        return (await walk(ref, Walk())).sidecar


class TestWalk:
    async def test_a_new_run_walks_to_sg1(self, world: World) -> None:
        paused = await at_sg1(world)
        assert paused.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert paused.phases_passed == PHASES[:5]
        assert paused.pending_gate is not None
        assert paused.pending_gate.gate is Gate.SG_1
        assert await world.run_store.load(paused.run_id) == paused

    async def test_an_approval_walks_it_through_sg1_to_sg2(self, world: World) -> None:
        paused = await at_sg1(world)
        kb_id = await world.approve(paused)
        async with segment(world, paused) as ref:
            at_sg2 = (await walk(ref, Walk(approval_kb_id=kb_id))).sidecar
        assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert kb_id in at_sg2.approvals_used
        assert at_sg2.phases_passed == PHASES[:9]
        assert await world.run_store.consumed_by(kb_id) == paused.run_id
        assert await world.run_store.load(paused.run_id) == at_sg2

    async def test_a_walk_of_a_paused_run_without_an_approval_leaves_it_paused(
        self, world: World
    ) -> None:
        paused = await at_sg1(world)
        async with segment(world, paused) as ref:
            reply = await ref.ask(Walk(), timeout=60)
        assert isinstance(reply, Refused)
        assert reply.refusal.code == StopApprovalRequired.code
        assert await world.run_store.load(paused.run_id) == paused


class TestAbort:
    async def test_a_paused_run_is_aborted_and_a_second_abort_gets_the_same_answer(
        self, world: World
    ) -> None:
        paused = await at_sg1(world)
        async with segment(world, paused) as ref:
            first = await ref.ask(Abort(reason="wrong document", by="op-z"), timeout=60)
            again = await ref.ask(Abort(reason="still wrong", by="op-y"), timeout=60)
        assert isinstance(first, WalkStopped)
        assert first.sidecar.state is RunState.ABORTED
        assert first.sidecar.stop is not None
        assert first.sidecar.stop.message == "aborted by op-z: wrong document"
        assert again == first
        assert await world.run_store.load(paused.run_id) == first.sidecar

    async def test_a_finished_run_is_not_abortable(self, world: World) -> None:
        paused = await at_sg1(world)
        async with segment(world, paused) as ref:
            await ref.ask(Abort(reason="wrong document", by="op-z"), timeout=60)
        aborted = await world.run_store.load(paused.run_id)
        async with segment(world, aborted) as ref:  # a new segment: nothing it did
            reply = await ref.ask(Abort(reason="again", by="op-z"), timeout=60)
        assert isinstance(reply, Refused)
        assert reply.refusal.code == RunNotAbortable.code

    async def test_an_abort_reaches_a_walking_run_at_the_next_phase_boundary(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        held = Held(monkeypatch, Phase.MARK)
        answers: dict[str, object] = {}
        with capture_logs() as logs:
            async with (
                segment(world, await world.new_run()) as ref,
                anyio.create_task_group() as tg,
            ):

                async def ask(
                    message: Walk | Abort, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED
                ) -> None:
                    task_status.started()  # the ask is in the mailbox before this yields
                    answers[message.__class__.__name__] = await ref.ask(message, timeout=60)

                tg.start_soon(ask, Walk())
                await held.entered.wait()  # mark is running
                await tg.start(ask, Abort(reason="wrong document", by="op-z"))
                held.release.set()
        walked, aborted = answers["Walk"], answers["Abort"]
        assert isinstance(walked, WalkStopped)
        assert aborted == walked  # the walk's answer is the abort's
        assert walked.sidecar.state is RunState.ABORTED
        # the phase in hand finished and was recorded; nothing after it ran
        assert walked.sidecar.phases_passed == (Phase.SOURCE_PIN, Phase.MARK)
        started = [e["phase"] for e in logs if e["event"] == "phase_started"]
        assert started == ["source_pin", "mark"]


class TestDrain:
    async def test_a_drain_pauses_a_walking_run_at_the_next_phase_boundary(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        held = Held(monkeypatch, Phase.MARK)
        answers: list[object] = []
        with capture_logs() as logs:
            async with (
                segment(world, await world.new_run()) as ref,
                anyio.create_task_group() as tg,
            ):

                async def ask() -> None:
                    answers.append(await ref.ask(Walk(), timeout=60))

                tg.start_soon(ask)
                await held.entered.wait()
                await ref.tell(Drain())  # in the mailbox before the phase ends
                held.release.set()
        [paused] = answers
        assert isinstance(paused, WalkStopped)
        assert paused.sidecar.state is RunState.RUNNING
        assert paused.sidecar.phases_passed == (Phase.SOURCE_PIN, Phase.MARK)
        assert await world.run_store.load(paused.sidecar.run_id) == paused.sidecar
        assert [e["phase"] for e in logs if e["event"] == "walk_paused"] == ["cutplan"]

        # the next segment continues it from there to SG_1
        async with segment(world, paused.sidecar) as ref:
            at_gate = (await walk(ref, Walk())).sidecar
        assert at_gate.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert at_gate.phases_passed == PHASES[:5]

    async def test_a_drained_supervisor_pauses_a_new_walk_before_its_first_phase(
        self, world: World
    ) -> None:
        async with segment(world, await world.new_run()) as ref:
            await ref.tell(Drain())
            paused = (await walk(ref, Walk())).sidecar
        assert paused.state is RunState.RUNNING
        assert paused.phases_passed == ()
