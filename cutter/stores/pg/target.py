"""PostgreSQL target stores: source versions, IU rows, backups, ledger, writer grants."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from cutter.core.canonical import canonical, sha256_hex
from cutter.core.codec import decode_backup, encode_backup, row_from_record, row_values
from cutter.core.errors import CorruptRecord, StopVerifyFailed, UnknownDocument
from cutter.core.ids import check_doc_id, check_sv_id
from cutter.core.ledger import (
    LedgerEntry,
    LedgerEnvelope,
    StoredEntry,
    decode_envelope,
    next_entry,
    verify_stored,
)
from cutter.core.records import (
    GRANT_PRIVILEGES,
    GRANT_TABLES,
    Backup,
    BackupInfo,
    IURow,
    SourceVersion,
    WriterGrants,
)
from cutter.stores.ingest import new_version, version_taken
from cutter.stores.iu_batch import check_batch, check_restore
from cutter.stores.pg import queries as q
from cutter.stores.pg.connect import domain_errors


class PgSourceRepository:
    """``SourceRepository`` and ``SourcePublisher`` on a pool, or on one connection
    (the CLI's ``add-document`` and the demo publish as the admin login)."""

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self.pool = pool

    async def publish(
        self, doc_id: str, data: bytes, *, sv_id: str | None = None, sd_id: str | None = None
    ) -> SourceVersion:
        """``SourcePublisher.publish``, in one transaction."""
        data = bytes(data)
        version = await new_version(doc_id, data, sv_id=sv_id, sd_id=sd_id)
        with domain_errors("publish source version"):
            if isinstance(self.pool, asyncpg.Connection):
                async with self.pool.transaction():
                    await _publish_on(self.pool, version, data)
            else:
                async with self.pool.acquire() as conn, conn.transaction():
                    await _publish_on(conn, version, data)
        return version

    async def current(self, doc_id: str) -> SourceVersion:
        check_doc_id(doc_id)
        with domain_errors("source lookup"):
            row = await self.pool.fetchrow(q.CURRENT_VERSION, doc_id)
        if row is None:
            raise UnknownDocument(doc_id)
        return SourceVersion(
            doc_id=row["doc_id"],
            sd_id=row["sd_id"],
            sv_id=row["sv_id"],
            sha256=row["sha256"],
            size=row["size"],
        )

    async def content(self, sv_id: str) -> bytes:
        check_sv_id(sv_id)
        with domain_errors("source content"):
            data = await self.pool.fetchval(q.VERSION_CONTENT, sv_id)
        if data is None:
            raise CorruptRecord(f"source_versions/{sv_id}", "no such version")
        return bytes(data)

    async def stored_sha(self, sv_id: str) -> str | None:
        # Hashed by the server: the bytes do not cross the wire to be compared.
        check_sv_id(sv_id)
        with domain_errors("source stored sha"):
            value = await self.pool.fetchval(q.VERSION_STORED_SHA, sv_id)
        return None if value is None else str(value)

    async def stored_bytes(self, sv_id: str) -> bytes | None:
        check_sv_id(sv_id)
        with domain_errors("source stored bytes"):
            data = await self.pool.fetchval(q.VERSION_CONTENT, sv_id)
        return None if data is None else bytes(data)

    async def mark_cut(self, sv_id: str, change_set_id: str) -> None:
        check_sv_id(sv_id)
        with domain_errors("mark source cut"):
            await self.pool.execute(q.MARK_CUT, sv_id, change_set_id)

    async def cut_by(self, sv_id: str) -> str | None:
        check_sv_id(sv_id)
        with domain_errors("source cut_by"):
            value = await self.pool.fetchval(q.CUT_BY, sv_id)
        return None if value is None else str(value)

    async def set_cut(self, sv_id: str, change_set_id: str | None) -> None:
        check_sv_id(sv_id)
        with domain_errors("set source cut"):
            await self.pool.execute(q.SET_CUT, sv_id, change_set_id)


async def _publish_on(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, version: SourceVersion, data: bytes
) -> None:
    await conn.execute(q.UPSERT_DOCUMENT, version.doc_id, version.sd_id)
    await conn.execute(
        q.INSERT_VERSION, version.sv_id, version.doc_id, version.sha256, version.size, data
    )
    held = await conn.fetchrow(q.VERSION_OWNER, version.sv_id)
    if held is not None and (held["doc_id"], held["sha256"]) != (version.doc_id, version.sha256):
        raise version_taken(version.sv_id, held["doc_id"])
    await conn.execute(q.SET_CURRENT, version.doc_id, version.sv_id)


# Records per round trip of a read-back: fewer than CPython's young-generation
# threshold (700 tracked allocations), so a batch is gone before it can age.
READ_BATCH = 500


class PgIUStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def rows(self, doc_id: str) -> list[IURow]:
        check_doc_id(doc_id)
        with domain_errors("read IUs"):
            return await self._read(q.DOC_ROWS, doc_id)

    async def change_set(self, change_set_id: str) -> list[IURow]:
        with domain_errors("read change set"):
            return await self._read(q.CHANGE_SET_ROWS, change_set_id)

    async def _read(self, query: str, key: str) -> list[IURow]:
        """Every row ``query`` selects, one statement (one snapshot), taken from a
        cursor ``READ_BATCH`` records at a time and turned into ``IURow`` batch by
        batch. asyncpg records are tracked by the garbage collector (an ``IURow`` is
        not): 10,000 of them alive at once, as one ``fetch`` returns them, outlive
        two young collections and make the next full collection come due, about
        16 ms in the middle of a verify phase; a batch dies young."""
        rows: list[IURow] = []
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = await conn.cursor(query, key)
            while batch := await cursor.fetch(READ_BATCH):
                rows.extend([row_from_record(r) for r in batch])
                if len(batch) < READ_BATCH:
                    break
        return rows

    async def write_staged(self, rows: Sequence[IURow]) -> int:
        """One transaction: COPY into a staging table, insert what is new, refuse conflicts.

        The first write of a cut finds none of its rows, so it first tries a COPY straight
        into ``ius`` under a savepoint (no staging table, no ``ON CONFLICT``). A row the
        table refuses (one that is there already, for a replay or a conflict; one a check
        rejects) or a value it cannot take rolls the savepoint back, and the staging path
        decides exactly as it would have alone. The ids and the batch itself are checked
        first (``check_batch``): a refused batch sends no SQL."""
        rows = check_batch(rows)
        with domain_errors("leg A write"):
            async with self.pool.acquire() as conn, conn.transaction():
                try:
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            q.IU_TABLE, records=map(row_values, rows), columns=q.IU_COLUMNS
                        )
                except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
                    pass  # rolled back to the savepoint: the staging path decides
                else:
                    return len(rows)
                await conn.execute(q.STAGE_TABLE)
                await conn.copy_records_to_table(
                    q.STAGE_NAME, records=map(row_values, rows), columns=q.IU_COLUMNS
                )
                conflict = await conn.fetchrow(q.STAGE_CONFLICTS)
                if conflict is not None:
                    raise StopVerifyFailed(
                        f"IU {conflict['doc_id']}/{conflict['sv_id']}#{conflict['ordinal']} "
                        f"belongs to change set {conflict['change_set_id']}"
                    )
                status = await conn.execute(q.INSERT_STAGED)
        return int(status.split()[-1])

    async def enact(self, change_set_id: str) -> int:
        with domain_errors("lifecycle enact"):
            async with self.pool.acquire() as conn, conn.transaction():
                doc_id = await conn.fetchval(q.CHANGE_SET_DOC, change_set_id)
                if doc_id is None:
                    return 0
                await conn.execute(q.SUPERSEDE_OTHERS, doc_id, change_set_id)
                await conn.execute(q.ACTIVATE, change_set_id)
                return int(await conn.fetchval(q.COUNT_ACTIVE, change_set_id))

    async def save_backup(self, backup: Backup) -> str:
        with domain_errors("save backup"):
            await self.pool.execute(
                q.INSERT_BACKUP, backup.backup_id, backup.doc_id, encode_backup(backup)
            )
        return backup.backup_id

    async def load_backup(self, backup_id: str) -> Backup:
        with domain_errors("load backup"):
            payload = await self.pool.fetchval(q.LOAD_BACKUP, backup_id)
        if payload is None:
            raise CorruptRecord(f"backups/{backup_id}", "no such backup")
        return decode_backup(bytes(payload), backup_id)

    async def backups(self, doc_id: str) -> list[BackupInfo]:
        check_doc_id(doc_id)
        with domain_errors("list backups"):
            records = await self.pool.fetch(q.LIST_BACKUPS, doc_id)
        return [
            BackupInfo.of(decode_backup(bytes(r["payload"]), r["backup_id"]), r["created_at"])
            for r in records
        ]

    async def restore(self, backup: Backup) -> None:
        doc_id = check_restore(backup)
        with domain_errors("restore backup"):
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(q.DELETE_DOC_ROWS, doc_id)
                if backup.rows:
                    await conn.copy_records_to_table(
                        q.IU_TABLE,
                        records=[row_values(r) for r in backup.rows],
                        columns=q.IU_COLUMNS,
                    )


def _entry(record: asyncpg.Record) -> LedgerEntry:
    try:
        envelope = decode_envelope(bytes(record["envelope"]))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"ledger/{record['seq']}", str(exc)) from exc
    return LedgerEntry(
        seq=record["seq"],
        prev_hash=record["prev_hash"],
        entry_hash=record["entry_hash"],
        envelope=envelope,
    )


class PgLedger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        data = canonical(envelope)
        envelope_sha = sha256_hex(data)
        with domain_errors("ledger append"):
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(q.LEDGER_LOCK)
                same = await conn.fetchrow(q.LEDGER_BY_ENVELOPE, envelope_sha)
                if same is not None:
                    return _entry(same)
                head = await conn.fetchrow(q.LEDGER_HEAD)
                entry = next_entry(_entry(head) if head is not None else None, envelope)
                await conn.execute(
                    q.LEDGER_INSERT,
                    entry.seq,
                    entry.prev_hash,
                    entry.entry_hash,
                    data,
                    envelope_sha,
                )
        return entry

    async def entries(self) -> list[LedgerEntry]:
        with domain_errors("ledger read"):
            return [_entry(r) for r in await self.pool.fetch(q.LEDGER_ALL)]

    async def at(self, seq: int) -> LedgerEntry | None:
        with domain_errors("ledger read"):
            row = await self.pool.fetchrow(q.LEDGER_AT, seq)
        return None if row is None else _entry(row)

    async def head(self) -> LedgerEntry | None:
        with domain_errors("ledger read"):
            row = await self.pool.fetchrow(q.LEDGER_HEAD)
        return None if row is None else _entry(row)

    async def find(self, envelope: LedgerEnvelope) -> LedgerEntry | None:
        with domain_errors("ledger read"):
            row = await self.pool.fetchrow(q.LEDGER_BY_ENVELOPE, sha256_hex(canonical(envelope)))
        return None if row is None else _entry(row)

    async def stored(self) -> list[StoredEntry]:
        """Every row as stored, in ``seq`` order (``LedgerReader``)."""
        with domain_errors("ledger verify"):
            rows = await self.pool.fetch(q.LEDGER_ALL)
        return [
            StoredEntry(
                r["seq"], r["prev_hash"], r["entry_hash"], bytes(r["envelope"]), r["envelope_sha"]
            )
            for r in rows
        ]

    async def verify(self) -> str:
        """Verify the chain over the stored bytes; the head hash, or ``ChainBroken``."""
        return verify_stored(await self.stored())


class PgGrantProbe:
    """Reads the writer's privileges from the catalog; writes nothing."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def writer_grants(self) -> WriterGrants:
        held: list[str] = []
        with domain_errors("grant probe"):
            async with self.pool.acquire() as conn:
                writer = await conn.fetchval(q.WHO_AM_I)
                for short, table in GRANT_TABLES.items():
                    for privilege in GRANT_PRIVILEGES:
                        if await conn.fetchval(q.HAS_PRIVILEGE, table, privilege.upper()):
                            held.append(f"{short}:{privilege}")
        return WriterGrants(writer=str(writer), grants=tuple(sorted(held)))
