"""Shared helpers of the PostgreSQL adapter tests: both implementations behind one face,
record builders, and a few admin statements.

``open_target`` / ``open_records`` give the in-memory fakes, the SQLite stores (a
database in a temporary directory removed on exit) or the PostgreSQL stores (every
statement as ``cutter_writer``) with the same methods, plus the few operations
a test needs that the ports do not offer (publishing a source version, writing garbage
over a stored record). Every pool opened here is closed on exit.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from cutter.canonical import sha256_hex
from cutter.kbdocs import Approval, Decision, PhaseDoc
from cutter.ledger import CutEnvelope, LedgerEnvelope, RollbackEnvelope
from cutter.mode import Mode
from cutter.pg.connect import create_pool
from cutter.pg.records import PgKnowledgeBase, PgRunStore
from cutter.pg.target import PgIUStore, PgLedger, PgSourceRepository, publish
from cutter.ports import IUStore, KnowledgeBase, Ledger, RunStore, SourceRepository
from cutter.records import IURow, IUState, SourceVersion
from cutter.sidecar import ApprovalUse
from cutter.sqlite.database import open_database
from cutter.sqlite.records import SqliteKnowledgeBase, SqliteRunStore
from cutter.sqlite.target import SqliteIUStore, SqliteLedger, SqliteSources
from cutter.stores.memory_records import InMemoryKnowledgeBase, InMemoryRunStore
from cutter.stores.memory_target import InMemoryIUStore, InMemoryLedger, InMemorySources
from cutter.walk import Gate, Phase, Pin
from tests.pg.conftest import PgDatabase

WRITER = "cutter_writer"
CONTROL = "cutter_control"
ADMIN_TIMEOUT_S = 10.0
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BACKENDS = ["memory", "sqlite", "pg"]
TARGET_BACKENDS = BACKENDS


@dataclass(frozen=True)
class Backend:
    """Which implementation a contract test runs on (``"memory"``, ``"sqlite"`` or
    ``"pg"``); ``db`` is set for ``"pg"``."""

    kind: str
    db: PgDatabase | None = None

    @property
    def pg(self) -> PgDatabase:
        assert self.db is not None, "a PostgreSQL-only helper was used on the memory backend"
        return self.db


# -- admin statements -----------------------------------------------------------------


async def admin_execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def admin_fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def admin_fetchval(dsn: str, query: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def table_snapshot(dsn: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (a fixed, trusted name), in a stable order."""
    rows = await admin_fetch(dsn, f"SELECT * FROM {table} ORDER BY 1")
    return [tuple(r.values()) for r in rows]


# -- target stores --------------------------------------------------------------------


@dataclass
class TargetUnderTest:
    kind: str
    sources: SourceRepository
    ius: IUStore
    ledger: Ledger
    publish: Callable[[str, bytes], Awaitable[SourceVersion]]
    db: PgDatabase | None


@asynccontextmanager
async def open_target(backend: Backend) -> AsyncIterator[TargetUnderTest]:
    if backend.kind == "memory":
        sources = InMemorySources()

        async def publish_memory(doc_id: str, data: bytes) -> SourceVersion:
            sv_id = f"sv-{doc_id}-{sha256_hex(data)[:16]}"
            return sources.publish(doc_id, data, sv_id=sv_id)

        yield TargetUnderTest(
            "memory", sources, InMemoryIUStore(), InMemoryLedger(), publish_memory, None
        )
        return
    if backend.kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cutter-target-") as tmp:
            async with open_database(Path(tmp) / "cutter.sqlite3") as database:
                embedded = SqliteSources(database)

                async def publish_sqlite(doc_id: str, data: bytes) -> SourceVersion:
                    return await embedded.publish(doc_id, data)

                yield TargetUnderTest(
                    "sqlite",
                    embedded,
                    SqliteIUStore(database),
                    SqliteLedger(database),
                    publish_sqlite,
                    None,
                )
        return
    db = backend.pg
    pool = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=4)
    admin = await create_pool(db.admin_dsn, min_size=0, max_size=2)
    try:

        async def publish_pg(doc_id: str, data: bytes) -> SourceVersion:
            # Publishing is an ingest step: the writer may not insert source versions.
            return await publish(admin, doc_id, data)

        yield TargetUnderTest(
            "pg",
            PgSourceRepository(pool),
            PgIUStore(pool),
            PgLedger(pool),
            publish_pg,
            db,
        )
    finally:
        await admin.close()
        await pool.close()


# -- record stores --------------------------------------------------------------------


@dataclass
class RecordsUnderTest:
    kind: str
    kb: KnowledgeBase
    runs: RunStore
    corrupt_kb: Callable[[str, bytes], Awaitable[None]]
    corrupt_run: Callable[[str, bytes], Awaitable[None]]
    delete_kb: Callable[[str], Awaitable[None]]
    db: PgDatabase | None


@asynccontextmanager
async def open_records(backend: Backend) -> AsyncIterator[RecordsUnderTest]:
    if backend.kind == "memory":
        kb, runs = InMemoryKnowledgeBase(), InMemoryRunStore()

        async def corrupt_kb_memory(kb_id: str, data: bytes) -> None:
            assert kb_id in kb._docs
            kb._docs[kb_id] = data

        async def corrupt_run_memory(run_id: str, data: bytes) -> None:
            assert run_id in runs._sidecars
            runs._sidecars[run_id] = data

        async def delete_kb_memory(kb_id: str) -> None:
            del kb._docs[kb_id]

        yield RecordsUnderTest(
            "memory", kb, runs, corrupt_kb_memory, corrupt_run_memory, delete_kb_memory, None
        )
        return
    if backend.kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cutter-records-") as tmp:
            path = Path(tmp) / "cutter.sqlite3"
            async with open_database(path) as database:

                def admin(statement: str, *args: object) -> None:
                    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
                        assert conn.execute(statement, args).rowcount == 1

                def overwrite(table: str, key: str, column: str, value: str, data: bytes) -> None:
                    admin(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", data, value)

                async def delete_kb_sqlite(kb_id: str) -> None:
                    admin("DELETE FROM kb_docs WHERE kb_id = ?", kb_id)

                async def corrupt_kb_sqlite(kb_id: str, data: bytes) -> None:
                    overwrite("kb_docs", "kb_id", "doc", kb_id, data)

                async def corrupt_run_sqlite(run_id: str, data: bytes) -> None:
                    overwrite("runs", "run_id", "sidecar", run_id, data)

                yield RecordsUnderTest(
                    "sqlite",
                    SqliteKnowledgeBase(database),
                    SqliteRunStore(database),
                    corrupt_kb_sqlite,
                    corrupt_run_sqlite,
                    delete_kb_sqlite,
                    None,
                )
        return
    db = backend.pg
    pool = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=4)
    control = await create_pool(db.control_dsn, role=CONTROL, min_size=0, max_size=2)
    try:

        async def corrupt_kb_pg(kb_id: str, data: bytes) -> None:
            conn = await asyncpg.connect(db.admin_dsn, timeout=ADMIN_TIMEOUT_S)
            try:
                status = await conn.execute(
                    "UPDATE kb_docs SET doc = $2 WHERE kb_id = $1", kb_id, data
                )
            finally:
                await conn.close()
            assert status == "UPDATE 1"

        async def corrupt_run_pg(run_id: str, data: bytes) -> None:
            conn = await asyncpg.connect(db.admin_dsn, timeout=ADMIN_TIMEOUT_S)
            try:
                status = await conn.execute(
                    "UPDATE runs SET sidecar = $2 WHERE run_id = $1", run_id, data
                )
            finally:
                await conn.close()
            assert status == "UPDATE 1"

        async def delete_kb_pg(kb_id: str) -> None:
            await admin_execute(db.admin_dsn, f"DELETE FROM kb_docs WHERE kb_id = '{kb_id}'")

        yield RecordsUnderTest(
            "pg",
            PgKnowledgeBase(pool, control),
            PgRunStore(pool, control),
            corrupt_kb_pg,
            corrupt_run_pg,
            delete_kb_pg,
            db,
        )
    finally:
        await control.close()
        await pool.close()


# -- builders -------------------------------------------------------------------------


def article_source(n: int = 4, *, tag: str = "") -> bytes:
    return b"".join(
        f"Article {i}{tag}\n\nThe text of article {i}, with \u00fcn\u00efcode.\n\n".encode()
        for i in range(1, n + 1)
    )


def cut(
    version: SourceVersion,
    data: bytes,
    change_set_id: str,
    *,
    parts: int = 3,
    state: IUState = IUState.STAGED,
    ordinals: Sequence[int] | None = None,
) -> list[IURow]:
    """IU rows tiling ``data`` in ``parts`` regions, in ordinal order."""
    assert len(data) >= parts
    size = len(data) // parts
    bounds = [i * size for i in range(parts)] + [len(data)]
    numbers = list(ordinals) if ordinals is not None else list(range(parts))
    rows: list[IURow] = []
    for i in range(parts):
        start, end = bounds[i], bounds[i + 1]
        body = data[start:end]
        rows.append(
            IURow(
                iu_id=f"iu-{version.doc_id}-{numbers[i]}",
                doc_id=version.doc_id,
                sv_id=version.sv_id,
                ordinal=numbers[i],
                label=f"Article {numbers[i] + 1}",
                kind="unit",
                start=start,
                end=end,
                region_sha=hashlib.sha256(body).hexdigest(),
                body=body,
                state=state,
                change_set_id=change_set_id,
            )
        )
    return rows


def envelopes() -> list[LedgerEnvelope]:
    return [
        CutEnvelope(
            run_id="run-a",
            doc_id="doc-1",
            sv_id="sv-1",
            change_set_id="cs-a",
            manifest_digest="0123456789abcdef" * 4,
            iu_count=12,
        ),
        RollbackEnvelope(
            run_id="run-a",
            doc_id="doc-1",
            sv_id="sv-1",
            change_set_id="cs-a",
            backup_id="bk-a",
            reason="rejected at SG_2 \u2014 \u00fcn\u00efcode and \x00 NUL",
        ),
        CutEnvelope(
            run_id="run-b",
            doc_id="doc-2",
            sv_id="sv-2",
            change_set_id="cs-b",
            manifest_digest="fedcba9876543210" * 4,
            iu_count=3,
        ),
    ]


def approval_use(approval_kb_id: str) -> ApprovalUse:
    return ApprovalUse(
        approval_kb_id=approval_kb_id,
        approver="alice",
        decision=Decision.APPROVE,
        peer=None,
        consumed_at=T0 + timedelta(minutes=5),
    )


def phase_doc(run_id: str = "run-a", *, note: str = "pinned") -> PhaseDoc:
    return PhaseDoc(
        run_id=run_id,
        phase=Phase.SOURCE_PIN,
        ordinal=0,
        mode=Mode.DRY_RUN,
        passed_at=T0,
        pins_added={Pin.SOURCE_SHA: "ab" * 32, Pin.SOURCE_SIZE: 120},
        note=note,
    )


def approval_doc(run_id: str = "run-a") -> Approval:
    return Approval(
        run_id=run_id,
        gate=Gate.SG_1,
        request_digest="d" * 64,
        nonce="n" * 32,
        decision=Decision.APPROVE,
        approver="alice",
        reason="looks right",
        issued_at=T0,
    )


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"
