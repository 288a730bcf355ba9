"""The gatekeeper driven directly: spawned in an ``ActorSystem`` on in-memory stores
and asked ``OpenGate`` / ``ConsumeApproval`` with no runner or supervisor around it.

What it must do: open a gate by writing the request doc and recording the gate;
release a gate for a valid approval exactly once; refuse (a refusal doc written,
nothing consumed, the stored run unchanged) a second use, a damaged request doc, a
broken rule; answer drift instead of consuming when the world moved under the pins.

The messages are built and sent in one place (``ask`` and its two callers below),
and a refusal's code read in one place (``code_of``), so a change of the ask API or
of the reply types touches only those."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
import pytest

from actors import ActorRef, ActorSystem
from cutter.core.approvals import GatePolicy
from cutter.core.errors import (
    ApprovalConsumedAlready,
    ApprovalNotFound,
    GateRefusal,
    GateRequestDamaged,
    SelfApprovalRefused,
    StopApprovalRequired,
    StopCode,
)
from cutter.core.kbdocs import (
    Approval,
    ApprovalRefusal,
    Decision,
    SovereignRequest,
    request_doc_id,
)
from cutter.core.mode import Mode
from cutter.core.ports import Target
from cutter.core.route import GATE_STATE, Gate, Pin
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.runtime.logs import get_logger
from cutter.stores.memory.records import InMemoryKnowledgeBase, InMemoryRunStore
from cutter.stores.memory.target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.walk.gatekeeper import Gatekeeper
from cutter.walk.messages import (
    ApprovalConsumed,
    ApprovalRefused,
    ConsumeApproval,
    DriftDetected,
    GatekeeperCommand,
    GatekeeperReply,
    GateOpened,
    OpenGate,
)
from cutter.walk.observe import observe
from cutter.walk.phases import Services
from cutter.walk.recorder import RunRecorder
from tests._gates import UncheckedGates
from tests._harness import OPERATOR, REVIEWER, REVIEWER_2, FakeClock

pytestmark = pytest.mark.anyio

DOC_ID, RUN_ID = "doc-1", "run-1"
ASK_TIMEOUT = 30.0  # a hang fails the test; nothing here waits on it


# -- the message construction: adapt here when the ask API or reply types change ---------


async def ask(
    ref: ActorRef[GatekeeperCommand, GatekeeperReply], message: GatekeeperCommand
) -> GatekeeperReply:
    return await ref.ask(message, timeout=ASK_TIMEOUT)


async def open_gate(
    ref: ActorRef[GatekeeperCommand, GatekeeperReply], run: Sidecar, gate: Gate
) -> GatekeeperReply:
    return await ask(ref, OpenGate(sidecar=run, gate=gate))


async def consume(
    ref: ActorRef[GatekeeperCommand, GatekeeperReply],
    run: Sidecar,
    approval_kb_id: str | None,
    peer: str | None = "reviewer@host",
) -> GatekeeperReply:
    gate = run.pending_gate
    assert gate is not None, "the gatekeeper is asked to consume only at a gate"
    return await ask(
        ref, ConsumeApproval(sidecar=run, gate=gate, approval_kb_id=approval_kb_id, peer=peer)
    )


def code_of(reply: object) -> str:
    assert isinstance(reply, ApprovalRefused), reply
    return str(reply.refusal.code)


# -- the world: in-memory stores, a run about to stop at a gate ----------------------------


@dataclass
class World:
    kb: InMemoryKnowledgeBase
    runs: InMemoryRunStore
    sources: InMemorySources
    ius: InMemoryIUStore
    clock: FakeClock
    services: Services
    policy: GatePolicy

    def stored(self) -> object:
        """Everything stored: "nothing was written" is equality."""
        return (dict(self.kb._docs), dict(self.runs._sidecars), dict(self.runs._consumed))


def make_world(policy: GatePolicy) -> World:
    kb, runs, sources, ius = (
        InMemoryKnowledgeBase(),
        InMemoryRunStore(),
        InMemorySources(),
        InMemoryIUStore(),
    )
    sources.seed(DOC_ID, b"Article 1. One.\nArticle 2. Two.\n", sv_id="sv-1")
    clock = FakeClock()
    services = Services(
        target=Target(sources=sources, ius=ius, ledger=InMemoryLedger()),
        kb=kb,
        discoverer=None,  # type: ignore[arg-type]  # the gatekeeper discovers nothing here
        grants=StaticGrantProbe(),
        clock=clock,
        gates=UncheckedGates(),
    )
    return World(kb, runs, sources, ius, clock, services, policy)


async def running(world: World, gate: Gate) -> Sidecar:
    """A stored run of DOC_ID that reached ``gate``: its pins are what the stores hold
    now, as the phases before the gate would have pinned them."""
    run = Sidecar(
        run_id=RUN_ID,
        doc_id=DOC_ID,
        mode=Mode.DRY_RUN,
        started_by=OPERATOR,
        created_at=world.clock(),
        updated_at=world.clock(),
        state=RunState.RUNNING,
        pins={Pin.SOURCE_VERSION_ID: "sv-1", Pin.CHANGE_SET_ID: "cs-1"},
    )
    pins = {**run.pins, **await observe(world.services, run, gate), Pin.IU_COUNT: 2}
    run = msgspec.structs.replace(run, pins=pins)
    await world.runs.create(run)
    return run


@asynccontextmanager
async def gatekeeper(
    world: World,
) -> AsyncIterator[ActorRef[GatekeeperCommand, GatekeeperReply]]:
    recorder = RunRecorder(world.runs, world.clock, get_logger(run_id=RUN_ID))
    async with ActorSystem("test") as system:
        ref = await system.spawn(Gatekeeper(world.services, recorder, world.policy), "gatekeeper")
        yield ref
        await ref.stop()
        assert system.failures == []


async def approve(
    world: World, run: Sidecar, *, approver: str = REVIEWER, decision: Decision = Decision.APPROVE
) -> str:
    gate = run.pending_gate
    assert gate is not None
    kb_id = f"approvals/{run.run_id}/{gate.gate.value}-{approver}-{decision.value}"
    await world.kb.put(
        kb_id,
        Approval(
            run_id=run.run_id,
            gate=gate.gate,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            decision=decision,
            approver=approver,
            reason="read it",
            issued_at=world.clock(),
            review_decision_id="review-1" if gate.gate is Gate.SG_2 else None,
        ),
    )
    return kb_id


@dataclass
class AtGate:
    world: World
    ref: ActorRef[GatekeeperCommand, GatekeeperReply]
    run: Sidecar  # paused at the gate, as stored


@asynccontextmanager
async def at_gate(
    gate: Gate = Gate.SG_1, policy: GatePolicy | None = None
) -> AsyncIterator[AtGate]:
    world = make_world(policy or GatePolicy())
    async with gatekeeper(world) as ref:
        reply = await open_gate(ref, await running(world, gate), gate)
        assert isinstance(reply, GateOpened)
        yield AtGate(world, ref, reply.sidecar)


async def assert_refused(
    at: AtGate, run: Sidecar, kb_id: str | None, expected: type[GateRefusal]
) -> None:
    """``kb_id`` offered for ``run`` is refused with ``expected``: one refusal doc is
    written saying so, and nothing else changes."""
    before = at.world.stored()
    refusals = set(await at.world.kb.list(f"runs/{run.run_id}/refusals"))
    reply = await consume(at.ref, run, kb_id)
    assert code_of(reply) == expected.code
    [new] = set(await at.world.kb.list(f"runs/{run.run_id}/refusals")) - refusals
    doc = await at.world.kb.get(new)
    assert isinstance(doc, ApprovalRefusal)
    assert (doc.gate, doc.approval_kb_id, doc.code) == (run.pending_gate.gate, kb_id, expected.code)  # type: ignore[union-attr]
    kb_docs, sidecars, consumed = at.world.stored()  # type: ignore[misc]
    assert (kb_docs.keys() - {new}, sidecars, consumed) == (before[0].keys(), before[1], before[2])  # type: ignore[index]


# -- opening ---------------------------------------------------------------------------


@pytest.mark.parametrize("gate", list(Gate))
async def test_opening_a_gate_writes_the_request_and_records_the_pause(gate: Gate) -> None:
    world = make_world(GatePolicy(required_approvals=2))
    async with gatekeeper(world) as ref:
        run = await running(world, gate)
        reply = await open_gate(ref, run, gate)
    assert isinstance(reply, GateOpened)
    paused = reply.sidecar
    assert paused == await world.runs.load(RUN_ID)
    assert paused.state is GATE_STATE[gate]
    assert paused.revision == run.revision + 1
    assert paused.stop is not None
    assert paused.stop.code is StopCode.APPROVAL_REQUIRED
    [record] = paused.gates
    assert (record.gate, record.required_approvals, record.uses) == (gate, 2, ())
    request = await world.kb.get(request_doc_id(RUN_ID, gate))
    assert isinstance(request, SovereignRequest)
    assert record.request_kb_id == request_doc_id(RUN_ID, gate)
    assert request.request_digest == record.request_digest == request.subject.request_digest
    assert request.subject.nonce == record.nonce
    assert request.required_approvals == 2
    assert request.subject.source_version_id == "sv-1"
    assert (request.subject.verify_result_id is not None) is (gate is Gate.SG_2)
    assert await world.runs.consumed_for(RUN_ID) == []


async def test_each_opening_has_its_own_nonce() -> None:
    async with at_gate() as first, at_gate() as second:
        assert first.run.pending_gate is not None
        assert second.run.pending_gate is not None
        assert first.run.pending_gate.nonce != second.run.pending_gate.nonce


# -- consuming -------------------------------------------------------------------------


async def test_a_valid_approval_is_consumed_once_and_releases_the_gate() -> None:
    async with at_gate() as at:
        kb_id = await approve(at.world, at.run)
        reply = await consume(at.ref, at.run, kb_id)
        assert isinstance(reply, ApprovalConsumed)
        released = reply.sidecar
        assert released == await at.world.runs.load(RUN_ID)
        assert released.state is RunState.RUNNING
        assert released.stop is None
        [use] = released.gates[0].uses
        assert (use.approval_kb_id, use.approver, use.peer) == (kb_id, REVIEWER, "reviewer@host")
        assert use.proof is None  # unsigned, not stored through the daemon
        assert await at.world.runs.consumed_by(kb_id) == RUN_ID
        # The same approval again, by a walker still holding the paused run.
        await assert_refused(at, at.run, kb_id, ApprovalConsumedAlready)
        assert await at.world.runs.load(RUN_ID) == released


async def test_two_approvers_are_needed_and_one_may_not_count_twice() -> None:
    async with at_gate(policy=GatePolicy(required_approvals=2)) as at:
        first = await approve(at.world, at.run)
        reply = await consume(at.ref, at.run, first)
        assert isinstance(reply, ApprovalConsumed)
        halfway = reply.sidecar
        assert halfway.state is GATE_STATE[Gate.SG_1]  # still waiting for the second
        await assert_refused(at, halfway, first, ApprovalConsumedAlready)
        second = await approve(at.world, halfway, approver=REVIEWER_2)
        reply = await consume(at.ref, halfway, second)
        assert isinstance(reply, ApprovalConsumed)
        assert reply.sidecar.state is RunState.RUNNING
        assert sorted(await at.world.runs.consumed_for(RUN_ID)) == sorted([first, second])


async def test_a_rejection_is_consumed_without_a_drift_check_and_keeps_the_pause() -> None:
    async with at_gate() as at:
        at.world.sources.seed(DOC_ID, b"Article 1. Changed.\n", sv_id="sv-2")
        kb_id = await approve(at.world, at.run, decision=Decision.REJECT)
        reply = await consume(at.ref, at.run, kb_id)
        assert isinstance(reply, ApprovalConsumed)
        assert reply.sidecar.state is GATE_STATE[Gate.SG_1]  # the supervisor ends it
        assert reply.sidecar.gates[0].rejected
        assert await at.world.runs.consumed_by(kb_id) == RUN_ID


async def test_drift_is_answered_and_the_approval_is_left_unused() -> None:
    async with at_gate() as at:
        kb_id = await approve(at.world, at.run)
        at.world.sources.seed(DOC_ID, b"Article 1. Changed.\n", sv_id="sv-2")
        before = at.world.stored()
        reply = await consume(at.ref, at.run, kb_id)
        assert isinstance(reply, DriftDetected)
        [item] = reply.items
        assert (item.pin, item.before, item.after) == (Pin.SOURCE_VERSION_ID.value, "sv-1", "sv-2")
        assert at.world.stored() == before  # not consumed; the supervisor records the stop
        assert await at.world.runs.consumed_by(kb_id) is None


async def test_a_damaged_request_doc_refuses_the_approval() -> None:
    async with at_gate() as at:
        kb_id = await approve(at.world, at.run)
        record = at.run.pending_gate
        assert record is not None
        request = await at.world.kb.get(record.request_kb_id)
        assert isinstance(request, SovereignRequest)
        await at.world.kb.put(  # what a reviewer is shown, changed after the opening
            record.request_kb_id, msgspec.structs.replace(request, required_approvals=0)
        )
        await assert_refused(at, at.run, kb_id, GateRequestDamaged)


async def test_a_missing_request_doc_refuses_the_approval() -> None:
    async with at_gate() as at:
        kb_id = await approve(at.world, at.run)
        assert at.run.pending_gate is not None
        del at.world.kb._docs[at.run.pending_gate.request_kb_id]
        await assert_refused(at, at.run, kb_id, GateRequestDamaged)


async def test_no_approval_named_is_refused() -> None:
    async with at_gate() as at:
        await assert_refused(at, at.run, None, StopApprovalRequired)


async def test_an_approval_outside_the_approval_locations_is_refused() -> None:
    async with at_gate() as at:
        kb_id = await approve(at.world, at.run)
        elsewhere = "runs/run-1/forged-approval"
        await at.world.kb.put(elsewhere, await at.world.kb.get(kb_id))
        await assert_refused(at, at.run, elsewhere, ApprovalNotFound)


async def test_a_rule_refusal_is_written_and_consumes_nothing() -> None:
    async with at_gate() as at:
        kb_id = await approve(at.world, at.run, approver=OPERATOR)
        await assert_refused(at, at.run, kb_id, SelfApprovalRefused)
