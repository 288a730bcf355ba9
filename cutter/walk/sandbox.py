"""The dry-run sandbox: overlays that read through to the target and keep every
write to themselves. Thrown away at the end of each walk segment, so a dry run
commits nothing to the target in any code path."""

from __future__ import annotations

from collections.abc import Sequence

from cutter.core.errors import CorruptRecord
from cutter.core.ledger import LedgerEntry, LedgerEnvelope, next_entry
from cutter.core.ports import IUStore, Ledger, SourceRepository, Target
from cutter.core.records import Backup, BackupInfo, IURow, SourceVersion
from cutter.stores.memory.target import InMemoryIUStore


class OverlaySources:
    def __init__(self, base: SourceRepository) -> None:
        self._base = base
        self._cut_by: dict[str, str | None] = {}  # None: cleared in the sandbox

    async def current(self, doc_id: str) -> SourceVersion:
        return await self._base.current(doc_id)

    async def content(self, sv_id: str) -> bytes:
        return await self._base.content(sv_id)

    async def stored_sha(self, sv_id: str) -> str | None:
        return await self._base.stored_sha(sv_id)

    async def stored_bytes(self, sv_id: str) -> bytes | None:
        return await self._base.stored_bytes(sv_id)

    async def mark_cut(self, sv_id: str, change_set_id: str) -> None:
        if await self.cut_by(sv_id) is None:
            self._cut_by[sv_id] = change_set_id

    async def cut_by(self, sv_id: str) -> str | None:
        if sv_id in self._cut_by:
            return self._cut_by[sv_id]
        return await self._base.cut_by(sv_id)

    async def set_cut(self, sv_id: str, change_set_id: str | None) -> None:
        self._cut_by[sv_id] = change_set_id


class OverlayIUStore:
    """Copies a document's rows from the base on first touch, then works on the copy."""

    def __init__(self, base: IUStore) -> None:
        self._base = base
        self._copy = InMemoryIUStore()
        self._loaded: set[str] = set()

    async def _load(self, doc_id: str) -> None:
        if doc_id not in self._loaded:
            self._loaded.add(doc_id)
            await self._copy.write_staged(await self._base.rows(doc_id))

    async def rows(self, doc_id: str) -> list[IURow]:
        await self._load(doc_id)
        return await self._copy.rows(doc_id)

    async def change_set(self, change_set_id: str) -> list[IURow]:
        return await self._copy.change_set(change_set_id)

    async def write_staged(self, rows: Sequence[IURow]) -> int:
        for doc_id in {r.doc_id for r in rows}:
            await self._load(doc_id)
        return await self._copy.write_staged(rows)

    async def enact(self, change_set_id: str) -> int:
        return await self._copy.enact(change_set_id)

    async def save_backup(self, backup: Backup) -> str:
        return await self._copy.save_backup(backup)

    async def load_backup(self, backup_id: str) -> Backup:
        """One the sandbox saved, else one the target holds (what a restore reads)."""
        try:
            return await self._copy.load_backup(backup_id)
        except CorruptRecord:  # the in-memory copy's "no such backup"
            return await self._base.load_backup(backup_id)

    async def backups(self, doc_id: str) -> list[BackupInfo]:
        held = await self._base.backups(doc_id)
        known = {b.backup_id for b in held}
        mine = [b for b in await self._copy.backups(doc_id) if b.backup_id not in known]
        return [*held, *mine]

    async def restore(self, backup: Backup) -> None:
        await self._load(backup.doc_id)
        await self._copy.restore(backup)


class OverlayLedger:
    def __init__(self, base: Ledger) -> None:
        self._base = base
        self._added: list[LedgerEntry] = []

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        held = await self.find(envelope)
        if held is not None:
            return held
        entry = next_entry(await self.head(), envelope)
        self._added.append(entry)
        return entry

    async def entries(self) -> list[LedgerEntry]:
        return [*await self._base.entries(), *self._added]

    async def at(self, seq: int) -> LedgerEntry | None:
        for entry in self._added:
            if entry.seq == seq:
                return entry
        return await self._base.at(seq)

    async def head(self) -> LedgerEntry | None:
        return self._added[-1] if self._added else await self._base.head()

    async def find(self, envelope: LedgerEnvelope) -> LedgerEntry | None:
        mine = next((e for e in self._added if e.envelope == envelope), None)
        return mine if mine is not None else await self._base.find(envelope)


def sandbox(target: Target) -> Target:
    return Target(
        sources=OverlaySources(target.sources),
        ius=OverlayIUStore(target.ius),
        ledger=OverlayLedger(target.ledger),
    )
