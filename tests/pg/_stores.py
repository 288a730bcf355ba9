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
from typing import Any, Protocol

import asyncpg
import pytest

from cutter.core.kbdocs import Approval, Decision, PhaseDoc
from cutter.core.ledger import CutEnvelope, LedgerEnvelope, RollbackEnvelope
from cutter.core.mode import Mode
from cutter.core.ports import (
    IUStore,
    KnowledgeBase,
    Ledger,
    RunStore,
    SourcePublisher,
    SourceRepository,
)
from cutter.core.records import Backup, IURow, IUState, SourceVersion
from cutter.core.route import Gate, Phase, Pin
from cutter.core.sidecar import ApprovalUse
from cutter.stores.memory.records import InMemoryKnowledgeBase, InMemoryRunStore
from cutter.stores.memory.target import InMemoryIUStore, InMemoryLedger, InMemorySources
from cutter.stores.pg.connect import create_pool
from cutter.stores.pg.records import PgKnowledgeBase, PgRunStore
from cutter.stores.pg.target import PgIUStore, PgLedger, PgSourceRepository
from cutter.stores.sqlite.database import open_database
from cutter.stores.sqlite.records import SqliteKnowledgeBase, SqliteRunStore
from cutter.stores.sqlite.target import SqliteIUStore, SqliteLedger, SqliteSources
from tests._harness import open_database_now, stored_rows
from tests.pg.conftest import PgDatabase

WRITER = "cutter_writer"
CONTROL = "cutter_control"
ADMIN_TIMEOUT_S = 10.0
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# PostgreSQL's runs start (or share) a server: marked for the quick loop to skip.
PG = pytest.param("pg", marks=pytest.mark.subprocess)
BACKENDS = ["memory", "sqlite", PG]
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
    publisher: SourcePublisher  # the ingest port (on PostgreSQL: as the admin login)
    db: PgDatabase | None
    # Everything stored, by table: "nothing was written" is equality.
    stored: Callable[[], Awaitable[object]]
    # The same stores opened again (a restart): a new connection, pool or handle.
    reopen: Callable[[], Awaitable[TargetUnderTest]]

    async def publish(self, doc_id: str, data: bytes) -> SourceVersion:
        return await self.publisher.publish(doc_id, data)


async def everything_stored(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the database at ``dsn`` (the migrations' own
    bookkeeping aside), by table."""
    rows = await admin_fetch(
        dsn,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename NOT IN ('schema_migrations', 'schema_version') ORDER BY 1",
    )
    return {r["tablename"]: await table_snapshot(dsn, r["tablename"]) for r in rows}


@asynccontextmanager
async def open_target(backend: Backend) -> AsyncIterator[TargetUnderTest]:
    if backend.kind == "memory":
        sources = InMemorySources()

        ius, ledger = InMemoryIUStore(), InMemoryLedger()

        async def stored_memory() -> object:
            return (
                dict(sources._current),
                dict(sources._content),
                dict(sources._cut_by),
                dict(ius._rows),
                dict(ius._backups),
                list(ledger._entries),
            )

        async def reopen_memory() -> TargetUnderTest:
            return opened  # one process: the same objects

        opened = TargetUnderTest(
            "memory", sources, ius, ledger, sources, None, stored_memory, reopen_memory
        )
        yield opened
        return
    if backend.kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cutter-target-") as tmp:
            async with open_database(Path(tmp) / "cutter.sqlite3") as database:
                embedded = SqliteSources(database)

                async def stored_sqlite() -> object:
                    return stored_rows(database.path)

                async def reopen_sqlite() -> TargetUnderTest:
                    again = open_database_now(Path(tmp))  # closed at the test's end
                    return TargetUnderTest(
                        "sqlite",
                        SqliteSources(again),
                        SqliteIUStore(again),
                        SqliteLedger(again),
                        SqliteSources(again),
                        None,
                        stored_sqlite,
                        reopen_sqlite,
                    )

                yield TargetUnderTest(
                    "sqlite",
                    embedded,
                    SqliteIUStore(database),
                    SqliteLedger(database),
                    embedded,
                    None,
                    stored_sqlite,
                    reopen_sqlite,
                )
        return
    db = backend.pg
    pool = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=4)
    admin = await create_pool(db.admin_dsn, min_size=0, max_size=2)
    pools = [pool, admin]
    try:

        async def stored_pg() -> object:
            return await everything_stored(db.admin_dsn)

        def on(writer: asyncpg.Pool) -> TargetUnderTest:
            return TargetUnderTest(
                "pg",
                PgSourceRepository(writer),
                PgIUStore(writer),
                PgLedger(writer),
                # Publishing is an ingest step: the writer may not insert source versions.
                PgSourceRepository(admin),
                db,
                stored_pg,
                reopen_pg,
            )

        async def reopen_pg() -> TargetUnderTest:
            again = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=4)
            pools.append(again)
            return on(again)

        yield on(pool)
    finally:
        for opened in reversed(pools):
            await opened.close()


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
    stored: Callable[[], Awaitable[object]]  # everything stored: "nothing written" is equality
    reopen: Callable[[], Awaitable[RunStore]]  # another handle on the same records (a restart)


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

        async def stored_memory() -> object:
            return (
                dict(kb._docs),
                dict(runs._sidecars),
                dict(runs._consumed),
                dict(runs._outbox),
                dict(runs._deliveries),
            )

        async def reopen_memory() -> RunStore:
            return runs

        yield RecordsUnderTest(
            "memory",
            kb,
            runs,
            corrupt_kb_memory,
            corrupt_run_memory,
            delete_kb_memory,
            None,
            stored_memory,
            reopen_memory,
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

                async def stored_sqlite() -> object:
                    return stored_rows(path)

                async def reopen_sqlite() -> RunStore:
                    return SqliteRunStore(open_database_now(Path(tmp)))  # closed at the end

                yield RecordsUnderTest(
                    "sqlite",
                    SqliteKnowledgeBase(database),
                    SqliteRunStore(database),
                    corrupt_kb_sqlite,
                    corrupt_run_sqlite,
                    delete_kb_sqlite,
                    None,
                    stored_sqlite,
                    reopen_sqlite,
                )
        return
    db = backend.pg
    pool = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=4)
    control = await create_pool(db.control_dsn, role=CONTROL, min_size=0, max_size=2)
    reopened: list[asyncpg.Pool] = []
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

        async def stored_pg() -> object:
            return await everything_stored(db.admin_dsn)

        async def reopen_pg() -> RunStore:
            again = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=2)
            reopened.append(again)
            return PgRunStore(again, control)

        yield RecordsUnderTest(
            "pg",
            PgKnowledgeBase(pool, control),
            PgRunStore(pool, control),
            corrupt_kb_pg,
            corrupt_run_pg,
            delete_kb_pg,
            db,
            stored_pg,
            reopen_pg,
        )
    finally:
        for again in reopened:
            await again.close()
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


def nth_envelope(n: int) -> CutEnvelope:
    return CutEnvelope(
        run_id=f"run-{n}",
        doc_id="doc-1",
        sv_id=f"sv-{n}",
        change_set_id=f"cs-{n}",
        manifest_digest=f"{n:064x}",
        iu_count=n,
    )


class TargetStores(Protocol):
    """What ``populate`` and ``view`` use: a ``TargetUnderTest``, or a test's own
    handle on one database's target stores."""

    @property
    def sources(self) -> SourceRepository: ...
    @property
    def ius(self) -> IUStore: ...
    @property
    def ledger(self) -> Ledger: ...
    async def publish(self, doc_id: str, data: bytes) -> SourceVersion: ...


async def populate(stores: TargetStores) -> str:
    """Two documents, two versions of one, a cut enacted, a staged cut, a backup, a
    ledger; the backup's id."""
    old_data, new_data = article_source(4, tag=" v1"), article_source(5, tag=" v2")
    old = await stores.publish("doc-1", old_data)
    await stores.ius.write_staged(cut(old, old_data, "cs-old", parts=3))
    await stores.ius.enact("cs-old")
    await stores.sources.mark_cut(old.sv_id, "cs-old")
    backup = Backup(doc_id="doc-1", rows=tuple(await stores.ius.rows("doc-1")))
    backup_id = await stores.ius.save_backup(backup)
    new = await stores.publish("doc-1", new_data)
    await stores.ius.write_staged(cut(new, new_data, "cs-new", parts=4))
    other_data = article_source(3, tag=" other")
    other = await stores.publish("doc-2", other_data)
    await stores.ius.write_staged(cut(other, other_data, "cs-other"))
    for e in envelopes():
        await stores.ledger.append(e)
    return backup_id


async def view(stores: TargetStores, backup_id: str) -> dict[str, object]:
    """Everything a reader can see of the populated stores."""
    current = {d: await stores.sources.current(d) for d in ("doc-1", "doc-2")}
    versions = sorted(
        {r.sv_id for d in current for r in await stores.ius.rows(d)}
        | {v.sv_id for v in current.values()}
    )
    return {
        "current": current,
        "contents": {sv: await stores.sources.content(sv) for sv in versions},
        "cut_by": {sv: await stores.sources.cut_by(sv) for sv in versions},
        "rows": {d: await stores.ius.rows(d) for d in current},
        "change_sets": {
            cs: await stores.ius.change_set(cs) for cs in ("cs-old", "cs-new", "cs-other")
        },
        "backup": await stores.ius.load_backup(backup_id),
        "entries": await stores.ledger.entries(),
        "head": await stores.ledger.verify(),
    }


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
