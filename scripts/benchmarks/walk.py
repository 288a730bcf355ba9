"""One full 11-phase walk through both gates, 12 IUs, in-memory stores, against
the same walk with the actor runtime bypassed (``benchmarks.inline``: every hook
called directly, on the same in-memory stores) plus one honest request/reply
(``benchmarks.honest``) per ask the walk made (and one per two tells)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks.common import Clocked, Figure, clocked, compared
from benchmarks.honest import honest_round_trips
from benchmarks.inline import Counts, bypassed

if TYPE_CHECKING:
    from cutter.core.mode import Mode
    from cutter.core.ports import KnowledgeBase
    from cutter.core.sidecar import Sidecar
    from cutter.walk.runner import Runner, RunnerConfig

IUS = 12


class KillSwitchOff:
    async def engaged(self) -> bool:
        return False


async def approve(kb: KnowledgeBase, sc: Sidecar) -> str:
    """What a scripted reviewer does at a gate: approve exactly the pending request
    as a second person. Returns the approval's kb_id."""
    from cutter.core.kbdocs import Approval, Decision
    from cutter.core.route import Gate
    from cutter.walk.runner import utc_now

    pending = sc.pending_gate
    assert pending is not None, f"run {sc.run_id} is {sc.state}, not at a gate"
    gate = pending.gate
    kb_id = f"approvals/{sc.run_id}/{gate.value}"
    await kb.put(
        kb_id,
        Approval(
            run_id=sc.run_id,
            gate=gate,
            request_digest=pending.request_digest,
            nonce=pending.nonce,
            decision=Decision.APPROVE,
            approver="reviewer",
            reason="bench",
            issued_at=utc_now(),
            review_decision_id="rv" if gate is Gate.SG_2 else None,
        ),
    )
    return kb_id


async def approve_and_resume(runner: Runner, config: RunnerConfig, sc: Sidecar) -> Sidecar:
    """Approve each gate the run stops at and resume it. Returns the run at its final stop."""
    while sc.pending_gate is not None:
        sc = await runner.resume(sc.run_id, await approve(config.kb, sc))
    return sc


def memory_config() -> RunnerConfig:
    from cutter.core.ports import Target
    from cutter.stores.memory.records import InMemoryKnowledgeBase, InMemoryRunStore
    from cutter.stores.memory.seeded import InMemoryDiscoverer
    from cutter.stores.memory.target import (
        InMemoryIUStore,
        InMemoryLedger,
        InMemorySources,
        StaticGrantProbe,
    )
    from cutter.walk.runner import RunnerConfig

    disc = InMemoryDiscoverer.seeded(IUS)
    sources = InMemorySources()
    sources.seed("doc", disc.source, sv_id="sv-1")
    return RunnerConfig(
        target=Target(sources=sources, ius=InMemoryIUStore(), ledger=InMemoryLedger()),
        kb=InMemoryKnowledgeBase(),
        run_store=InMemoryRunStore(),
        discoverer=disc,
        grants=StaticGrantProbe(),
        kill_switch=KillSwitchOff(),
    )


async def walk_through(
    config: RunnerConfig, doc_id: str, mode: Mode | None = None
) -> tuple[Clocked, Sidecar]:
    """Wall and CPU seconds for one cut of ``doc_id`` and its resumes to closeout
    (a live ``mode`` needs ``cutter.core.mode.enable_execution()``), and the run at its end."""
    from cutter.core.mode import Mode
    from cutter.core.states import RunState
    from cutter.walk.runner import Runner

    async with Runner(config) as runner:
        with clocked() as clock:
            sc = await runner.cut(doc_id, mode or Mode.DRY_RUN, started_by="operator")
            sc = await approve_and_resume(runner, config, sc)
    assert sc.state is RunState.CLOSEOUT_REPORTED, sc.state
    return clock, sc


async def walk_once(config: RunnerConfig, doc_id: str, mode: Mode | None = None) -> Clocked:
    return (await walk_through(config, doc_id, mode))[0]


async def one_walk(mode: Mode | None = None) -> Clocked:
    """The walk on fresh in-memory stores."""
    return await walk_once(memory_config(), "doc", mode)


def honest_messages(counts: Counts) -> int:
    """Honest request/replies for what the walk sent: one per ask, one per two tells
    (a tell wakes its receiver once, a round trip twice)."""
    return counts.asks + (counts.tells + 1) // 2


async def floor_walk() -> tuple[Clocked, Counts]:
    """The walk with the runtime bypassed, plus its messages as honest round trips."""
    with bypassed() as counts:
        walk = await one_walk()
    hops = await honest_round_trips(honest_messages(counts))
    return Clocked(walk.wall + hops.wall, walk.cpu + hops.cpu), counts


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    anyio.run(one_walk)  # warm up
    anyio.run(floor_walk)
    walks: list[Clocked] = []
    floors: list[Clocked] = []
    counts = Counts()
    for _ in range(repetitions):  # alternating, so drift on a shared machine hits both
        walks.append(anyio.run(one_walk))
        floor, counts = anyio.run(floor_walk)
        floors.append(floor)
    return compared(
        "walk",
        "ms",
        [c.wall * 1e3 for c in walks],
        [c.wall * 1e3 for c in floors],
        target="<= 1.3x the floor",
        limit=1.3,
        note=(
            f"cut + two resumes, {IUS} IUs, dry run, in-memory stores; floor: the same walk "
            f"with the runtime bypassed ({counts.spawns} actors started inline) + "
            f"{honest_messages(counts)} honest request/replies ({counts.asks} asks, "
            f"{counts.tells} tells)"
        ),
        cpu=[c.cpu * 1e3 for c in walks],
        floor_cpu=[c.cpu * 1e3 for c in floors],
    )
