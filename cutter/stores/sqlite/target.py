"""The embedded target stores: source versions, IU rows, backups, the ledger.

The production data of the embedded default, in the tables of
``migrations/0001_initial.sql``; semantics as ``cutter.stores.memory.target`` and
``cutter.stores.pg.target`` (the contract tests in ``tests/pg/test_adapters.py`` run over all
three). Every change is one write of ``cutter.stores.sqlite.database`` (one savepoint in a
group-committed transaction), so a ``kill -9`` leaves it whole or absent; reads run on
the loop. Ids are validated before they reach a statement, as the file stores did.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from cutter.core.canonical import canonical, sha256_hex
from cutter.core.codec import decode_backup, encode_backup, row_from_record, row_values
from cutter.core.errors import CorruptRecord, UnknownDocument
from cutter.core.ids import check_doc_id, check_sv_id
from cutter.core.ledger import (
    LedgerEntry,
    LedgerEnvelope,
    StoredEntry,
    decode_envelope,
    next_entry,
    verify_stored,
)
from cutter.core.records import Backup, BackupInfo, IURow, SourceVersion
from cutter.stores.ingest import content_sha256, new_version, version_taken
from cutter.stores.iu_batch import check_batch, check_restore, taken_row
from cutter.stores.sqlite.database import Database

_IU_COLUMNS = (
    "doc_id, sv_id, ordinal, iu_id, label, kind, start_byte, end_byte, region_sha, body, "
    "state, change_set_id"
)


class SqliteSources:
    """``SourceRepository`` and ``SourcePublisher``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def publish(
        self, doc_id: str, data: bytes, *, sv_id: str | None = None, sd_id: str | None = None
    ) -> SourceVersion:
        """``SourcePublisher.publish``, in one transaction."""
        data = bytes(data)
        version = await new_version(doc_id, data, sv_id=sv_id, sd_id=sd_id)
        doc_id, sv_id, sha = version.doc_id, version.sv_id, version.sha256

        def publish(conn: sqlite3.Connection) -> SourceVersion:
            conn.execute(
                "INSERT INTO documents (doc_id, sd_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (doc_id, version.sd_id),
            )
            held = conn.execute(
                "SELECT doc_id, sha256 FROM source_versions WHERE sv_id = ?", (sv_id,)
            ).fetchone()
            if held is None:
                conn.execute(
                    "INSERT INTO source_versions (sv_id, doc_id, sha256, size, content)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (sv_id, doc_id, sha, len(data), data),
                )
            elif tuple(held) != (doc_id, sha):
                raise version_taken(sv_id, held[0])
            conn.execute("UPDATE documents SET current_sv_id = ? WHERE doc_id = ?", (sv_id, doc_id))
            return version

        return await self.db.write(publish, bulk=True)

    async def current(self, doc_id: str) -> SourceVersion:
        row = self.db.one(
            "SELECT v.doc_id, d.sd_id, v.sv_id, v.sha256, v.size FROM documents d"
            " JOIN source_versions v ON v.sv_id = d.current_sv_id WHERE d.doc_id = ?",
            (check_doc_id(doc_id),),
        )
        if row is None:
            raise UnknownDocument(doc_id)
        return SourceVersion(doc_id=row[0], sd_id=row[1], sv_id=row[2], sha256=row[3], size=row[4])

    async def content(self, sv_id: str) -> bytes:
        row = self.db.one(
            "SELECT sha256, content FROM source_versions WHERE sv_id = ?", (check_sv_id(sv_id),)
        )
        if row is None:
            raise CorruptRecord(f"source_versions/{sv_id}", "no such version")
        sha, data = row[0], bytes(row[1])
        if await content_sha256(data) != sha:
            raise CorruptRecord(f"source_versions/{sv_id}", "does not match the version's sha256")
        return data

    async def stored_sha(self, sv_id: str) -> str | None:
        data = await self.stored_bytes(sv_id)
        return None if data is None else await content_sha256(data)

    async def stored_bytes(self, sv_id: str) -> bytes | None:
        query = "SELECT content FROM source_versions WHERE sv_id = ?"
        data = self.db.value(query, (check_sv_id(sv_id),))
        return None if data is None else bytes(data)

    async def mark_cut(self, sv_id: str, change_set_id: str) -> None:
        sv_id = check_sv_id(sv_id)
        await self.db.write(
            lambda c: c.execute(
                "UPDATE source_versions SET cut_by = ? WHERE sv_id = ? AND cut_by IS NULL",
                (change_set_id, sv_id),
            )
        )

    async def cut_by(self, sv_id: str) -> str | None:
        query = "SELECT cut_by FROM source_versions WHERE sv_id = ?"
        value = self.db.value(query, (check_sv_id(sv_id),))
        return None if value is None else str(value)

    async def set_cut(self, sv_id: str, change_set_id: str | None) -> None:
        sv_id = check_sv_id(sv_id)
        await self.db.write(
            lambda c: c.execute(
                "UPDATE source_versions SET cut_by = ? WHERE sv_id = ?", (change_set_id, sv_id)
            )
        )


_INSERT_IU = f"INSERT INTO ius ({_IU_COLUMNS}) VALUES ({', '.join('?' * 12)})"


class SqliteIUStore:
    """``IUStore``: ``ius`` and ``backups``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def rows(self, doc_id: str) -> list[IURow]:
        records = self.db.all(
            f"SELECT {_IU_COLUMNS} FROM ius WHERE doc_id = ? ORDER BY sv_id, ordinal",
            (check_doc_id(doc_id),),
        )
        return [row_from_record(r) for r in records]

    async def change_set(self, change_set_id: str) -> list[IURow]:
        records = self.db.all(
            f"SELECT {_IU_COLUMNS} FROM ius WHERE change_set_id = ? ORDER BY ordinal",
            (change_set_id,),
        )
        return [row_from_record(r) for r in records]

    async def write_staged(self, rows: Sequence[IURow]) -> int:
        """One write: insert what is new, skip a row already there unchanged, refuse
        (and write nothing of the batch) a row that is there with another change set
        or other bytes."""
        rows = check_batch(rows)
        values = [row_values(r) for r in rows]

        def write(conn: sqlite3.Connection) -> int:
            added = 0
            for row, value in zip(rows, values, strict=True):
                try:
                    conn.execute(_INSERT_IU, value)
                except sqlite3.IntegrityError:
                    held = conn.execute(
                        "SELECT change_set_id, region_sha FROM ius"
                        " WHERE doc_id = ? AND sv_id = ? AND ordinal = ?",
                        (row.doc_id, row.sv_id, row.ordinal),
                    ).fetchone()
                    if held is None:
                        raise  # a check or a foreign key refused the row itself
                    if tuple(held) != (row.change_set_id, row.region_sha):
                        raise taken_row(row, held[0]) from None
                else:
                    added += 1
            return added

        return await self.db.write(write, bulk=True)

    async def enact(self, change_set_id: str) -> int:
        def enact(conn: sqlite3.Connection) -> int:
            found = conn.execute(
                "SELECT doc_id FROM ius WHERE change_set_id = ? LIMIT 1", (change_set_id,)
            ).fetchone()
            if found is None:
                return 0
            conn.execute(
                "UPDATE ius SET state = 'superseded'"
                " WHERE doc_id = ? AND state = 'active' AND change_set_id <> ?",
                (found[0], change_set_id),
            )
            conn.execute(
                "UPDATE ius SET state = 'active' WHERE change_set_id = ? AND state <> 'active'",
                (change_set_id,),
            )
            return int(
                conn.execute(
                    "SELECT count(*) FROM ius WHERE change_set_id = ? AND state = 'active'",
                    (change_set_id,),
                ).fetchone()[0]
            )

        return await self.db.write(enact)

    async def save_backup(self, backup: Backup) -> str:
        backup_id = backup.backup_id
        data = encode_backup(backup)

        def save(conn: sqlite3.Connection) -> str:
            held = conn.execute(
                "SELECT payload FROM backups WHERE backup_id = ?", (backup_id,)
            ).fetchone()
            if held is None:
                conn.execute(
                    "INSERT INTO backups (backup_id, doc_id, payload) VALUES (?, ?, ?)",
                    (backup_id, backup.doc_id, data),
                )
            elif bytes(held[0]) != data:  # content-addressed: one id, one content
                raise CorruptRecord(f"backups/{backup_id}", "differs from the backup its id names")
            return backup_id

        return await self.db.write(save)

    async def load_backup(self, backup_id: str) -> Backup:
        payload = self.db.value("SELECT payload FROM backups WHERE backup_id = ?", (backup_id,))
        if payload is None:
            raise CorruptRecord(f"backups/{backup_id}", "no such backup")
        return decode_backup(bytes(payload), backup_id)

    async def backups(self, doc_id: str) -> list[BackupInfo]:
        query = (
            "SELECT backup_id, payload, created_at FROM backups WHERE doc_id = ?"
            " ORDER BY created_at, backup_id"
        )
        return [
            BackupInfo.of(decode_backup(bytes(payload), backup_id), datetime.fromisoformat(at))
            for backup_id, payload, at in self.db.all(query, (check_doc_id(doc_id),))
        ]

    async def restore(self, backup: Backup) -> None:
        doc_id = check_restore(backup)
        values = [row_values(r) for r in backup.rows]

        def restore(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM ius WHERE doc_id = ?", (doc_id,))
            conn.executemany(_INSERT_IU, values)

        await self.db.write(restore, bulk=True)


def _entry(record: tuple[Any, ...]) -> LedgerEntry:
    seq, prev_hash, entry_hash, envelope = record[:4]
    try:
        decoded = decode_envelope(bytes(envelope))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"ledger/{seq}", str(exc)) from exc
    return LedgerEntry(seq=seq, prev_hash=prev_hash, entry_hash=entry_hash, envelope=decoded)


_LEDGER_COLUMNS = "seq, prev_hash, entry_hash, envelope, envelope_sha"


class SqliteLedger:
    """``Ledger`` and ``LedgerReader``: one row per entry, append-only (triggers refuse
    an update or a delete). An append reads the head by its primary key and inserts
    one row: its cost does not grow with the ledger."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        data = canonical(envelope)
        envelope_sha = sha256_hex(data)

        def append(conn: sqlite3.Connection) -> LedgerEntry:
            same = conn.execute(
                f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE envelope_sha = ?", (envelope_sha,)
            ).fetchone()
            if same is not None:
                return _entry(same)
            head = conn.execute(
                f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            entry = next_entry(_entry(head) if head is not None else None, envelope)
            conn.execute(
                f"INSERT INTO ledger ({_LEDGER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (entry.seq, entry.prev_hash, entry.entry_hash, data, envelope_sha),
            )
            return entry

        return await self.db.write(append)

    async def entries(self) -> list[LedgerEntry]:
        rows = self.db.all(f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq")
        return [_entry(r) for r in rows]

    async def at(self, seq: int) -> LedgerEntry | None:
        row = self.db.one(f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE seq = ?", (seq,))
        return None if row is None else _entry(row)

    async def head(self) -> LedgerEntry | None:
        row = self.db.one(f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq DESC LIMIT 1")
        return None if row is None else _entry(row)

    async def find(self, envelope: LedgerEnvelope) -> LedgerEntry | None:
        envelope_sha = sha256_hex(canonical(envelope))
        row = self.db.one(
            f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE envelope_sha = ?", (envelope_sha,)
        )
        return None if row is None else _entry(row)

    async def stored(self) -> list[StoredEntry]:
        """Every row as stored, in ``seq`` order (``LedgerReader``)."""
        rows = self.db.all(f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq")
        return [StoredEntry(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def verify(self) -> str:
        """Verify the chain over the stored bytes; the head hash, or ``ChainBroken``."""
        return verify_stored(await self.stored())


if TYPE_CHECKING:  # the stores satisfy the ports (checked by mypy, free at run time)
    from cutter.core.ports import IUStore, Ledger, LedgerReader, SourceRepository

    def _check(db: Database) -> None:
        _sources: SourceRepository = SqliteSources(db)
        _ius: IUStore = SqliteIUStore(db)
        _ledger: Ledger = SqliteLedger(db)
        _reader: LedgerReader = SqliteLedger(db)
