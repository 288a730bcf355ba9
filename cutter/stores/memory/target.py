"""In-memory target stores: source versions, IU rows, ledger, writer grants.

They hold the production data of the embedded default and of tests. Values
are frozen Structs, so nothing a caller holds can change what is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import msgspec

from cutter.core.canonical import canonical, sha256_hex
from cutter.core.errors import CorruptRecord, UnknownDocument
from cutter.core.ids import check_doc_id, check_sv_id, default_sd_id
from cutter.core.ledger import LedgerEntry, LedgerEnvelope, StoredEntry, next_entry
from cutter.core.records import (
    REQUIRED_GRANTS,
    Backup,
    BackupInfo,
    IURow,
    IUState,
    SourceVersion,
    WriterGrants,
)
from cutter.stores.ingest import new_version, version_taken
from cutter.stores.iu_batch import check_batch, check_restore, taken_row


class InMemorySources:
    def __init__(self) -> None:
        self._current: dict[str, SourceVersion] = {}
        self._content: dict[str, bytes] = {}
        self._cut_by: dict[str, str] = {}
        self._doc_of: dict[str, str] = {}

    async def publish(
        self, doc_id: str, data: bytes, *, sv_id: str | None = None, sd_id: str | None = None
    ) -> SourceVersion:
        """``SourcePublisher.publish``."""
        data = bytes(data)
        version = await new_version(doc_id, data, sv_id=sv_id, sd_id=sd_id)
        held = self._content.get(version.sv_id)
        if held is not None and (held, self._doc_of[version.sv_id]) != (data, version.doc_id):
            raise version_taken(version.sv_id, self._doc_of[version.sv_id])
        return self._store(version, data)

    def seed(
        self, doc_id: str, data: bytes, *, sv_id: str, sd_id: str | None = None
    ) -> SourceVersion:
        """Store ``data`` as the document's new current version at once, unchecked:
        the synchronous set-up of tests and benchmarks (ingest is ``publish``)."""
        version = SourceVersion(
            doc_id=doc_id,
            sd_id=sd_id or default_sd_id(doc_id),
            sv_id=sv_id,
            sha256=sha256_hex(data),
            size=len(data),
        )
        return self._store(version, bytes(data))

    def _store(self, version: SourceVersion, data: bytes) -> SourceVersion:
        self._current[version.doc_id] = version
        self._content[version.sv_id] = data
        self._doc_of[version.sv_id] = version.doc_id
        return version

    async def current(self, doc_id: str) -> SourceVersion:
        try:
            return self._current[check_doc_id(doc_id)]
        except KeyError:
            raise UnknownDocument(doc_id) from None

    async def content(self, sv_id: str) -> bytes:
        try:
            return self._content[check_sv_id(sv_id)]
        except KeyError:
            raise CorruptRecord(f"source_versions/{sv_id}", "no such version") from None

    async def stored_sha(self, sv_id: str) -> str | None:
        data = self._content.get(check_sv_id(sv_id))
        return None if data is None else sha256_hex(data)

    async def stored_bytes(self, sv_id: str) -> bytes | None:
        return self._content.get(check_sv_id(sv_id))

    async def mark_cut(self, sv_id: str, change_set_id: str) -> None:
        if check_sv_id(sv_id) in self._content:
            self._cut_by.setdefault(sv_id, change_set_id)

    async def cut_by(self, sv_id: str) -> str | None:
        return self._cut_by.get(check_sv_id(sv_id))

    async def set_cut(self, sv_id: str, change_set_id: str | None) -> None:
        if check_sv_id(sv_id) not in self._content:
            return
        if change_set_id is None:
            self._cut_by.pop(sv_id, None)
        else:
            self._cut_by[sv_id] = change_set_id


def _key(row: IURow) -> tuple[str, str, int]:
    return (row.doc_id, row.sv_id, row.ordinal)


class InMemoryIUStore:
    def __init__(self, rows: Iterable[IURow] = ()) -> None:
        self._rows: dict[tuple[str, str, int], IURow] = {_key(r): r for r in rows}
        self._backups: dict[str, Backup] = {}
        self._saved_at: dict[str, datetime] = {}

    async def rows(self, doc_id: str) -> list[IURow]:
        check_doc_id(doc_id)
        return sorted((r for r in self._rows.values() if r.doc_id == doc_id), key=_key)

    async def change_set(self, change_set_id: str) -> list[IURow]:
        found = (r for r in self._rows.values() if r.change_set_id == change_set_id)
        return sorted(found, key=lambda r: r.ordinal)

    async def write_staged(self, rows: Sequence[IURow]) -> int:
        rows = check_batch(rows)
        for row in rows:
            held = self._rows.get(_key(row))
            if held is not None and (
                held.change_set_id != row.change_set_id or held.region_sha != row.region_sha
            ):
                raise taken_row(row, held.change_set_id)
        added = {_key(r): r for r in rows if _key(r) not in self._rows}  # a repeat is one row
        self._rows.update(added)
        return len(added)

    async def enact(self, change_set_id: str) -> int:
        mine = [r for r in self._rows.values() if r.change_set_id == change_set_id]
        if not mine:
            return 0
        doc_id = mine[0].doc_id
        for key, row in list(self._rows.items()):
            if row.change_set_id == change_set_id:
                self._rows[key] = msgspec.structs.replace(row, state=IUState.ACTIVE)
            elif row.doc_id == doc_id and row.state is IUState.ACTIVE:
                self._rows[key] = msgspec.structs.replace(row, state=IUState.SUPERSEDED)
        return len(mine)

    async def save_backup(self, backup: Backup) -> str:
        self._backups[backup.backup_id] = backup
        self._saved_at.setdefault(backup.backup_id, datetime.now(UTC))
        return backup.backup_id

    async def backups(self, doc_id: str) -> list[BackupInfo]:
        check_doc_id(doc_id)
        found = [
            BackupInfo.of(backup, self._saved_at[backup_id])
            for backup_id, backup in self._backups.items()
            if backup.doc_id == doc_id
        ]
        return sorted(found, key=lambda b: (b.saved_at, b.backup_id))

    async def load_backup(self, backup_id: str) -> Backup:
        try:
            return self._backups[backup_id]
        except KeyError:
            raise CorruptRecord(f"backups/{backup_id}", "no such backup") from None

    async def restore(self, backup: Backup) -> None:
        doc_id = check_restore(backup)
        for key in [k for k, r in self._rows.items() if r.doc_id == doc_id]:
            del self._rows[key]
        for row in backup.rows:
            self._rows[_key(row)] = row


class InMemoryLedger:
    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        for entry in self._entries:
            if entry.envelope == envelope:
                return entry
        entry = next_entry(self._entries[-1] if self._entries else None, envelope)
        self._entries.append(entry)
        return entry

    async def entries(self) -> list[LedgerEntry]:
        return list(self._entries)

    async def at(self, seq: int) -> LedgerEntry | None:
        return self._entries[seq] if 0 <= seq < len(self._entries) else None

    async def head(self) -> LedgerEntry | None:
        return self._entries[-1] if self._entries else None

    async def find(self, envelope: LedgerEnvelope) -> LedgerEntry | None:
        return next((e for e in self._entries if e.envelope == envelope), None)

    async def stored(self) -> list[StoredEntry]:
        return [
            StoredEntry(e.seq, e.prev_hash, e.entry_hash, canonical(e.envelope))
            for e in self._entries
        ]


class StaticGrantProbe:
    """A writer identity with a fixed set of grants (all the cut needs, by default)."""

    def __init__(self, writer: str = "cutter_writer", grants: Iterable[str] = REQUIRED_GRANTS):
        self.writer = writer
        self.grants = tuple(sorted(set(grants)))

    async def writer_grants(self) -> WriterGrants:
        return WriterGrants(writer=self.writer, grants=self.grants)
