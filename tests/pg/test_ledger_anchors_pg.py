"""The ledger checked against its anchors on PostgreSQL (docs/ledger.md §8).

Three live runs as ``cutter_writer``: one closed (cut at entry 0), one rejected at
SG_2 (cut at 1, rollback at 2), one closed (cut at 3, the newest row). Then the
superuser damages the ``ledger`` table in ways the hash chain alone accepts —
``DELETE`` of the newest row (a committed cut of a closed run), every row but the
first, ``TRUNCATE``, a rewritten row with the whole chain recomputed — and
``verify-ledger``, run as ``cutter_reader``, names each run that lost an entry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import asyncpg
import msgspec
import pytest
from click.testing import CliRunner

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.cli.ledger import verify_stores
from cutter.cli.main import main
from cutter.core.anchors import AnchorStatus, LedgerReport
from cutter.core.canonical import canonical, sha256_hex
from cutter.core.kbdocs import Decision
from cutter.core.ledger import CutEnvelope, LedgerEntry, LedgerEnvelope, decode_envelope, next_entry
from cutter.core.mode import Mode
from cutter.core.ports import KnowledgeBase
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.pg.connect import create_pool
from cutter.stores.pg.target import PgLedger
from cutter.walk.runner import Runner
from tests._harness import OPERATOR
from tests.pg._walk import N_IUS, admin_execute, publish_source, write_approval
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

DOCS = ("doc-anchor-a", "doc-anchor-b", "doc-anchor-c")
REHASHED = (
    "the entry holds this run's envelope under another entry_hash: an entry before it "
    "was changed, removed or inserted and the chain recomputed"
)


@dataclass(frozen=True)
class Runs:
    db: PgDatabase
    a: Sidecar  # closed
    b: Sidecar  # rejected at SG_2
    c: Sidecar  # closed, its cut the newest row


async def walk(runner: Runner, kb: KnowledgeBase, doc_id: str, sg2: Decision) -> Sidecar:
    sc = await runner.cut(doc_id, Mode.LIVE, started_by=OPERATOR)
    sc = await runner.resume(sc.run_id, await write_approval(kb, sc))
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
    return await runner.resume(sc.run_id, await write_approval(kb, sc, decision=sg2))


@pytest.fixture
async def runs(pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> Runs:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    disc = InMemoryDiscoverer.seeded(N_IUS)
    for doc_id in DOCS:
        await publish_source(pg_db.admin_dsn, doc_id, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        a = await walk(runner, config.kb, DOCS[0], Decision.APPROVE)
        b = await walk(runner, config.kb, DOCS[1], Decision.REJECT)
        c = await walk(runner, config.kb, DOCS[2], Decision.APPROVE)
    assert (a.state, b.state, c.state) == (
        RunState.CLOSEOUT_REPORTED,
        RunState.REJECTED,
        RunState.CLOSEOUT_REPORTED,
    )
    return Runs(pg_db, a, b, c)


async def chain_alone_holds(db: PgDatabase) -> None:
    """The check that existed before anchors: it accepts every damage below."""
    pool = await create_pool(db.reader_dsn, min_size=0, max_size=1)
    try:
        await PgLedger(pool).verify()
    finally:
        await pool.close()


def found(report: LedgerReport) -> list[tuple[str, str, int, AnchorStatus, str]]:
    return [(f.run_id, f.kind, f.seq, f.status, f.detail) for f in report.problems]


async def rechain(admin_dsn: str, change: int) -> None:
    """Rewrite entry ``change`` (one more IU) and recompute every row from genesis, as
    the superuser with cutter's own code would."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        rows = await conn.fetch("SELECT envelope FROM ledger ORDER BY seq")
        envelopes: list[LedgerEnvelope] = [decode_envelope(bytes(r["envelope"])) for r in rows]
        target = envelopes[change]
        assert isinstance(target, CutEnvelope)
        envelopes[change] = msgspec.structs.replace(target, iu_count=target.iu_count + 1)
        async with conn.transaction():
            await conn.execute("DELETE FROM ledger")
            head: LedgerEntry | None = None
            for envelope in envelopes:
                head = next_entry(head, envelope)
                body = canonical(envelope)
                await conn.execute(
                    "INSERT INTO ledger (seq, prev_hash, entry_hash, envelope, envelope_sha)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    head.seq,
                    head.prev_hash,
                    head.entry_hash,
                    body,
                    sha256_hex(body),
                )
    finally:
        await conn.close()


async def test_a_healthy_ledger_of_several_runs_verifies_as_the_reader(runs: Runs) -> None:
    report = await verify_stores(Path(), runs.db.reader_dsn)
    assert report.ok
    assert [(f.run_id, f.kind, f.seq, f.status) for f in report.findings] == [
        (runs.a.run_id, "cut", 0, AnchorStatus.HOLDS),
        (runs.b.run_id, "cut", 1, AnchorStatus.HOLDS),
        (runs.b.run_id, "rollback", 2, AnchorStatus.HOLDS),
        (runs.c.run_id, "cut", 3, AnchorStatus.HOLDS),
    ]
    assert report.unanchored == ()


async def test_deleting_the_newest_row_names_the_closed_run_whose_cut_it_was(
    runs: Runs,
) -> None:
    await admin_execute(
        runs.db.admin_dsn, "DELETE FROM ledger WHERE seq = (SELECT max(seq) FROM ledger)"
    )
    await chain_alone_holds(runs.db)
    assert runs.c.state is RunState.CLOSEOUT_REPORTED
    report = await verify_stores(Path(), runs.db.reader_dsn)
    assert found(report) == [
        (runs.c.run_id, "cut", 3, AnchorStatus.MISSING, "the ledger ends at entry 2")
    ]

    result = await anyio.to_thread.run_sync(
        functools.partial(CliRunner().invoke, main, ["verify-ledger", "--dsn", runs.db.reader_dsn])
    )
    assert result.exit_code == 1, result.output
    assert f"run {runs.c.run_id} (document {DOCS[2]}):" in result.output
    assert "  cut entry 3 MISSING: the ledger ends at entry 2" in result.output


async def test_keeping_only_the_first_row_names_every_later_run(runs: Runs) -> None:
    await admin_execute(runs.db.admin_dsn, "DELETE FROM ledger WHERE seq > 0")
    await chain_alone_holds(runs.db)
    ends = "the ledger ends at entry 0"
    assert found(await verify_stores(Path(), runs.db.reader_dsn)) == [
        (runs.b.run_id, "cut", 1, AnchorStatus.MISSING, ends),
        (runs.b.run_id, "rollback", 2, AnchorStatus.MISSING, ends),
        (runs.c.run_id, "cut", 3, AnchorStatus.MISSING, ends),
    ]


async def test_a_truncated_table_names_every_run(runs: Runs) -> None:
    await admin_execute(runs.db.admin_dsn, "TRUNCATE ledger")
    await chain_alone_holds(runs.db)
    report = await verify_stores(Path(), runs.db.reader_dsn)
    assert {(f.run_id, f.seq, f.status) for f in report.problems} == {
        (runs.a.run_id, 0, AnchorStatus.MISSING),
        (runs.b.run_id, 1, AnchorStatus.MISSING),
        (runs.b.run_id, 2, AnchorStatus.MISSING),
        (runs.c.run_id, 3, AnchorStatus.MISSING),
    }


async def test_a_rewritten_row_with_the_chain_recomputed_is_found(runs: Runs) -> None:
    await rechain(runs.db.admin_dsn, change=1)
    await chain_alone_holds(runs.db)
    b, c = runs.b.run_id, runs.c.run_id
    report = await verify_stores(Path(), runs.db.reader_dsn)
    assert found(report) == [
        (b, "cut", 1, AnchorStatus.CHANGED, f"the entry holds another envelope (run {b}, cut)"),
        (b, "rollback", 2, AnchorStatus.CHANGED, REHASHED),
        (c, "cut", 3, AnchorStatus.CHANGED, REHASHED),
    ]
