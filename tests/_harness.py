"""The shared harness of the orchestrator tests, shaped like the seed report's.

rig = build_runner(tmp_path, n_candidates=12)
async with rig.runner:
    sc = await rig.runner.cut(DOC_ID)
    kb_id = await write_sg1_approval(rig, sc.run_id)
    sc = await rig.runner.resume(sc.run_id, kb_id)
"""

from __future__ import annotations

import itertools
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cutter.core.approvals import GatePolicy
from cutter.core.kbdocs import Approval, Decision, phase_doc_id, request_doc_id
from cutter.core.mode import Mode
from cutter.core.ports import Target
from cutter.core.records import IURow, IUState
from cutter.core.route import GATE_STATE, Gate, Phase, Pin
from cutter.core.sidecar import GateRecord, Sidecar
from cutter.core.state_dir import StateDir
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.memory.target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.stores.sqlite.database import Database, open_now
from cutter.stores.sqlite.records import SqliteKillSwitch, SqliteKnowledgeBase, SqliteRunStore
from cutter.walk.runner import Runner, RunnerConfig

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


# Every database a rig opened; ``close_databases`` (an autouse fixture of
# tests/conftest.py) closes them when the test ends.
_OPEN: list[Database] = []


def open_database_now(state_dir: Path) -> Database:
    """The embedded database of ``state_dir`` (made as needed), closed at teardown."""
    state_dir.mkdir(parents=True, exist_ok=True)
    db = open_now(StateDir(state_dir).database)
    _OPEN.append(db)
    return db


def close_databases() -> None:
    while _OPEN:
        _OPEN.pop().close()


def stored_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the database at ``path`` (its bookkeeping aside:
    the schema version, the durability barrier's counter), by table, empty tables left
    out: "nothing was written" is equality."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table'"
                " AND name NOT IN ('schema_version', 'durable_mark', 'sqlite_sequence')"
                " ORDER BY name"
            )
        ]
        found = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    return {t: rows for t, rows in found.items() if rows}


def hand_edit(path: Path, statement: str, *args: object) -> int:
    """Run ``statement`` on the database at ``path`` from outside the stores (as any
    SQLite tool could); the number of rows it changed."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(statement, args).rowcount


@dataclass
class Rig:
    runner: Runner
    disc: InMemoryDiscoverer
    store: InMemoryIUStore
    kb: SqliteKnowledgeBase
    sources: InMemorySources
    ledger: InMemoryLedger
    run_store: SqliteRunStore
    grants: StaticGrantProbe
    kill_switch: SqliteKillSwitch
    clock: FakeClock
    state_dir: Path
    db: Database
    fresh: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def reopen(self, **config: object) -> Rig:
        """A new runner and stores on the same database (opened again), same target:
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

    # What a test reads or edits behind the stores' back, as a person with any SQLite
    # tool could: the tests say what they change, not where a store keeps it.

    def stored(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row the state holds, by table (``rig.fresh`` is it at build time)."""
        return stored_rows(self.db.path)

    def stored_sidecar(self, run_id: str) -> bytes:
        data = self.db.value("SELECT sidecar FROM runs WHERE run_id = ?", (run_id,))
        assert data is not None, f"no stored run {run_id}"
        return bytes(data)

    def overwrite_sidecar(self, run_id: str, data: bytes) -> None:
        """Replace the stored bytes of ``run_id``'s sidecar (state and doc columns kept)."""
        changed = hand_edit(
            self.db.path, "UPDATE runs SET sidecar = ? WHERE run_id = ?", data, run_id
        )
        assert changed == 1, f"no stored run {run_id}"

    def stored_kb_doc(self, kb_id: str) -> bytes | None:
        data = self.db.value("SELECT doc FROM kb_docs WHERE kb_id = ?", (kb_id,))
        return None if data is None else bytes(data)

    def overwrite_kb_doc(self, kb_id: str, data: bytes) -> None:
        """Store ``data`` as the bytes of KB doc ``kb_id``, there already or not."""
        hand_edit(
            self.db.path,
            "INSERT INTO kb_docs (kb_id, doc) VALUES (?, ?)"
            " ON CONFLICT (kb_id) DO UPDATE SET doc = excluded.doc",
            kb_id,
            data,
        )

    def delete_kb_doc(self, kb_id: str) -> None:
        changed = hand_edit(self.db.path, "DELETE FROM kb_docs WHERE kb_id = ?", kb_id)
        assert changed == 1, f"no stored KB doc {kb_id}"


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
        sources.seed(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    store = store if store is not None else InMemoryIUStore()
    ledger = ledger or InMemoryLedger()
    grants = grants or StaticGrantProbe()
    clock = clock or FakeClock()
    db = open_database_now(tmpdir)
    kb = SqliteKnowledgeBase(db)
    run_store = SqliteRunStore(db)
    kill_switch = SqliteKillSwitch(db)
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
            durable=db.durable,
        )
    )
    rig = Rig(
        runner, disc, store, kb, sources, ledger, run_store, grants, kill_switch, clock, tmpdir, db
    )
    rig.fresh = rig.stored()
    return rig


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


async def at_gate(
    rig: Rig, gate: Gate, mode: Mode = Mode.DRY_RUN, *, started_by: str = OPERATOR
) -> Sidecar:
    """A run of DOC_ID on ``rig`` (its runner entered) paused at ``gate``: cut, and for
    SG_2 approved at SG_1 by REVIEWER. The one way tests reach a gate through a runner
    (the ``rig_at_sg1``/``rig_at_sg2`` fixtures of tests/conftest.py use it)."""
    sc = await rig.runner.cut(DOC_ID, mode, started_by=started_by)
    assert sc.state is GATE_STATE[Gate.SG_1], sc.stop
    if gate is Gate.SG_2:
        sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is GATE_STATE[Gate.SG_2], sc.stop
    return sc


async def at_sg1(rig: Rig, mode: Mode = Mode.DRY_RUN) -> Sidecar:
    return await at_gate(rig, Gate.SG_1, mode)


async def at_sg2(rig: Rig, mode: Mode = Mode.DRY_RUN) -> Sidecar:
    return await at_gate(rig, Gate.SG_2, mode)


@dataclass
class Paused:
    """A rig whose runner is running, and the run it holds paused at a gate."""

    rig: Rig
    run: Sidecar

    @property
    def run_id(self) -> str:
        return self.run.run_id


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
