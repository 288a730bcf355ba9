"""The shared harness of the orchestrator tests, shaped like the seed report's.

rig = build_runner(tmp_path, n_candidates=12)
async with rig.runner:
    sc = await rig.runner.cut(DOC_ID)
    kb_id = await write_sg1_approval(rig, sc.run_id)
    sc = await rig.runner.resume(sc.run_id, kb_id)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cutter.approvals import GatePolicy
from cutter.kbdocs import Approval, Decision, phase_doc_id, request_doc_id
from cutter.mode import Mode
from cutter.ports import Target
from cutter.records import IURow, IUState
from cutter.runner import Runner, RunnerConfig
from cutter.sidecar import GateRecord, Sidecar
from cutter.states import RunState
from cutter.stores.files import FileKillSwitch, FileKnowledgeBase, FileRunStore
from cutter.stores.memory_target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.stores.seeded import InMemoryDiscoverer
from cutter.walk import Gate, Phase, Pin

DOC_ID = "doc-charter-001"
SD_ID = "sd-charter-001"
SV_ID = "sv-charter-001-v1"
OPERATOR = "operator-ann"
REVIEWER = "reviewer-bob"
REVIEWER_2 = "reviewer-cy"


@dataclass
class FakeClock:
    """A clock tests move by hand: expiry without waiting."""

    now: datetime = field(default_factory=lambda: datetime(2026, 5, 20, 9, 0, tzinfo=UTC))
    step: timedelta = timedelta(milliseconds=1)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Rig:
    runner: Runner
    disc: InMemoryDiscoverer
    store: InMemoryIUStore
    kb: FileKnowledgeBase
    sources: InMemorySources
    ledger: InMemoryLedger
    run_store: FileRunStore
    grants: StaticGrantProbe
    kill_switch: FileKillSwitch
    clock: FakeClock
    state_dir: Path

    def reopen(self, **config: object) -> Rig:
        """A new runner and file stores on the same state directory, same target:
        what a process restart sees."""
        return build_runner(
            self.state_dir,
            disc=self.disc,
            store=self.store,
            sources=self.sources,
            ledger=self.ledger,
            grants=self.grants,
            clock=self.clock,
            **config,
        )


def seed_discoverer(n_candidates: int = 12) -> InMemoryDiscoverer:
    return InMemoryDiscoverer.seeded(n_candidates)


def build_runner(
    tmpdir: Path,
    n_candidates: int = 12,
    *,
    disc: InMemoryDiscoverer | None = None,
    store: InMemoryIUStore | None = None,
    sources: InMemorySources | None = None,
    ledger: InMemoryLedger | None = None,
    grants: StaticGrantProbe | None = None,
    clock: FakeClock | None = None,
    policy: GatePolicy | None = None,
) -> Rig:
    disc = disc or seed_discoverer(n_candidates)
    if sources is None:
        sources = InMemorySources()
        sources.publish(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    store = store if store is not None else InMemoryIUStore()
    ledger = ledger or InMemoryLedger()
    grants = grants or StaticGrantProbe()
    clock = clock or FakeClock()
    kb = FileKnowledgeBase(tmpdir / "kb")
    run_store = FileRunStore(tmpdir / "state")
    kill_switch = FileKillSwitch(tmpdir / "state" / "kill-switch")
    runner = Runner(
        RunnerConfig(
            target=Target(sources=sources, ius=store, ledger=ledger),
            kb=kb,
            run_store=run_store,
            discoverer=disc,
            grants=grants,
            kill_switch=kill_switch,
            policy=policy or GatePolicy(),
            clock=clock,
        )
    )
    return Rig(
        runner, disc, store, kb, sources, ledger, run_store, grants, kill_switch, clock, tmpdir
    )


_serial = itertools.count(1)


async def write_approval(
    rig: Rig,
    run_id: str,
    gate: Gate,
    *,
    approver: str = REVIEWER,
    decision: Decision = Decision.APPROVE,
    request_digest: str | None = None,
    nonce: str | None = None,
    issued_at: datetime | None = None,
    review_decision_id: str | None = None,
    for_run: str | None = None,
) -> str:
    """Write an approval doc answering the gate ``run_id`` waits at; returns its kb_id.

    By default it answers exactly the open request; each keyword forges one field."""
    sidecar = await rig.run_store.load(run_id)
    pending = sidecar.gate(gate) or sidecar.pending_gate
    kb_id = f"approvals/{run_id}/{gate.value}-{next(_serial)}"
    await rig.kb.put(
        kb_id,
        Approval(
            run_id=for_run or run_id,
            gate=gate,
            request_digest=request_digest or (pending.request_digest if pending else "none"),
            nonce=nonce or (pending.nonce if pending else "none"),
            decision=decision,
            approver=approver,
            reason="checked the plan against the source",
            issued_at=issued_at or rig.clock(),
            review_decision_id=review_decision_id,
        ),
    )
    return kb_id


async def write_sg1_approval(rig: Rig, run_id: str, **fields: object) -> str:
    return await write_approval(rig, run_id, Gate.SG_1, **fields)  # type: ignore[arg-type]


async def write_sg2_approval(rig: Rig, run_id: str, **fields: object) -> str:
    fields.setdefault("review_decision_id", f"review-{run_id}")
    return await write_approval(rig, run_id, Gate.SG_2, **fields)  # type: ignore[arg-type]


# A row an earlier cut of DOC_ID left active: what a live cut backs up and supersedes.
OLD_ROW = IURow(
    iu_id="iu-older-cut-0",
    doc_id=DOC_ID,
    sv_id="sv-charter-001-v0",
    ordinal=0,
    label="Article 1",
    kind="unit",
    start=0,
    end=3,
    region_sha="ab" * 32,
    body=b"old",
    state=IUState.ACTIVE,
    change_set_id="cs-older-cut",
)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: "nothing was written" is equality."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


PAUSED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def paused_sidecar(
    run_id: str = "run-a", *, started_by: str = "operator", at: datetime = PAUSED_AT
) -> Sidecar:
    """A run paused at SG_1 after two phases: the record the store contract tests save,
    load and consume against (file, in-memory and PostgreSQL stores alike)."""
    gate = GateRecord(
        gate=Gate.SG_1,
        request_kb_id=request_doc_id(run_id, Gate.SG_1),
        request_digest="d" * 64,
        nonce="n" * 32,
        opened_at=at,
        required_approvals=1,
    )
    return Sidecar(
        run_id=run_id,
        doc_id="doc-1",
        mode=Mode.DRY_RUN,
        started_by=started_by,
        created_at=at,
        updated_at=at,
        state=RunState.AWAITING_CUT_AUTHORIZATION,
        phases_passed=(Phase.SOURCE_PIN, Phase.MARK),
        pins={Pin.SOURCE_SHA: "ab" * 32, Pin.SOURCE_SIZE: 120},
        phase_docs={Phase.SOURCE_PIN: phase_doc_id(run_id, Phase.SOURCE_PIN, 0)},
        gates=(gate,),
    )
