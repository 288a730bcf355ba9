"""``FileIUStore``: IU rows as per-document snapshots committed by one HEAD rename.

Layout, crash argument and concurrency: ``cutter.stores.file_target``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
import msgspec

from cutter.canonical import canonical, sha256_hex
from cutter.errors import CorruptRecord, InvalidIdentifier, StopVerifyFailed
from cutter.ids import check_doc_id, check_token
from cutter.records import Backup, IURow, IUState
from cutter.stores.atomic import read_bytes, remove, write_atomic
from cutter.stores.file_primitives import create_once, decode_record, inside_root

_HEX64 = re.compile(r"[0-9a-f]{64}")
_READ_ATTEMPTS = 16  # a reader re-reads HEAD at most this often while writers move on
S = TypeVar("S")


class IUHead(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The commit point of the IU store."""

    docs: dict[str, str]  # doc_id -> sha256 of its snapshot file
    change_sets: dict[str, tuple[str, ...]]  # change_set_id -> sorted doc_ids with its rows


class DocRows(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every IU row of one document, ordered by (sv_id, ordinal)."""

    doc_id: str
    rows: tuple[IURow, ...]


_EMPTY_HEAD = IUHead(docs={}, change_sets={})
_head_decoder = msgspec.json.Decoder(IUHead)
_doc_decoder = msgspec.json.Decoder(DocRows)
_backup_decoder = msgspec.json.Decoder(Backup)

_Key = tuple[str, str, int]


def _key(row: IURow) -> _Key:
    return (row.doc_id, row.sv_id, row.ordinal)


def _row_order(row: IURow) -> tuple[str, int]:
    return (row.sv_id, row.ordinal)


class _StaleRead(Exception):
    """A snapshot HEAD named was removed by a commit since HEAD was read."""


class FileIUStore:
    """``IUStore`` under ``root``: per-document snapshots committed by one HEAD rename."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._head_path = self._root / "HEAD.json"
        self._lock = anyio.Lock()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def head_path(self) -> Path:
        return self._head_path

    def snapshot_path(self, doc_id: str, sha: str) -> Path:
        path = self._root / "docs" / check_doc_id(doc_id) / (sha + ".json")
        return inside_root(self._root, path, "doc_id")

    def backup_path(self, backup_id: str) -> Path:
        path = self._root / "backups" / (check_token("backup_id", backup_id) + ".json")
        return inside_root(self._root, path, "backup_id")

    async def rows(self, doc_id: str) -> list[IURow]:
        return await anyio.to_thread.run_sync(self._rows, doc_id)

    async def change_set(self, change_set_id: str) -> list[IURow]:
        return await anyio.to_thread.run_sync(self._change_set, change_set_id)

    async def write_staged(self, rows: Sequence[IURow]) -> int:
        batch = list(rows)
        async with self._lock:
            return await anyio.to_thread.run_sync(self._write_staged, batch)

    async def enact(self, change_set_id: str) -> int:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._enact, change_set_id)

    async def save_backup(self, backup: Backup) -> str:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._save_backup, backup)

    async def load_backup(self, backup_id: str) -> Backup:
        return await anyio.to_thread.run_sync(self._load_backup, backup_id)

    async def restore(self, backup: Backup) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._restore, backup)

    # -- reading ------------------------------------------------------------------------

    def _read_head(self) -> tuple[IUHead, bytes | None]:
        data = read_bytes(self._head_path)
        if data is None:
            return _EMPTY_HEAD, None
        head = decode_record(_head_decoder.decode, data, self._head_path)
        try:
            for doc_id, sha in head.docs.items():
                check_doc_id(doc_id)
                if not _HEX64.fullmatch(sha):
                    raise InvalidIdentifier("snapshot", f"{sha[:70]!r} is not a sha256")
            for doc_ids in head.change_sets.values():
                for doc_id in doc_ids:
                    check_doc_id(doc_id)
        except InvalidIdentifier as exc:
            raise CorruptRecord(str(self._head_path), exc.message) from exc
        return head, data

    def _read_doc(self, head: IUHead, doc_id: str) -> list[IURow]:
        """The document's rows as ``head`` has them; ``_StaleRead`` when a commit removed
        the snapshot since ``head`` was read."""
        sha = head.docs.get(doc_id)
        if sha is None:
            return []
        path = self.snapshot_path(doc_id, sha)
        data = read_bytes(path)
        if data is None:
            raise _StaleRead(str(path))
        if sha256_hex(data) != sha:
            raise CorruptRecord(str(path), "does not match the sha256 HEAD.json names")
        snapshot = decode_record(_doc_decoder.decode, data, path)
        if snapshot.doc_id != doc_id or any(r.doc_id != doc_id for r in snapshot.rows):
            raise CorruptRecord(str(path), f"holds rows of another document than {doc_id}")
        return list(snapshot.rows)

    def _consistent(self, read: Callable[[IUHead], S]) -> S:
        """Run ``read`` on the current HEAD, again on a newer HEAD if a commit overtook it."""
        for _ in range(_READ_ATTEMPTS):
            head, data = self._read_head()
            try:
                return read(head)
            except _StaleRead as stale:
                if read_bytes(self._head_path) == data:
                    raise CorruptRecord(str(stale), "missing, though HEAD.json names it") from None
        raise CorruptRecord(str(self._head_path), "kept changing while it was read")

    def _rows(self, doc_id: str) -> list[IURow]:
        check_doc_id(doc_id)
        return self._consistent(lambda head: self._read_doc(head, doc_id))

    def _change_set(self, change_set_id: str) -> list[IURow]:
        def read(head: IUHead) -> list[IURow]:
            found = [
                row
                for doc_id in head.change_sets.get(change_set_id, ())
                for row in self._read_doc(head, doc_id)
                if row.change_set_id == change_set_id
            ]
            return sorted(found, key=lambda r: (r.ordinal, r.doc_id, r.sv_id))

        return self._consistent(read)

    # -- writing (under the lock, so nothing else commits meanwhile) ---------------------

    def _load(self, head: IUHead, doc_ids: set[str]) -> dict[str, list[IURow]]:
        loaded: dict[str, list[IURow]] = {}
        for doc_id in sorted(doc_ids):
            try:
                loaded[doc_id] = self._read_doc(head, doc_id)
            except _StaleRead as stale:  # only this process writes, and it holds the lock
                raise CorruptRecord(str(stale), "missing, though HEAD.json names it") from None
        return loaded

    def _commit(self, head: IUHead, changed: dict[str, list[IURow]]) -> None:
        """Write the changed documents' snapshots, then HEAD: the one commit point."""
        docs = dict(head.docs)
        change_sets = {cs: set(doc_ids) for cs, doc_ids in head.change_sets.items()}
        stale: list[Path] = []
        for doc_id, unordered in changed.items():
            old_sha = head.docs.get(doc_id)
            rows = sorted(unordered, key=_row_order)
            if rows:
                data = canonical(DocRows(doc_id=doc_id, rows=tuple(rows)))
                sha = sha256_hex(data)
                if sha == old_sha:
                    continue
                path = self.snapshot_path(doc_id, sha)
                if read_bytes(path) != data:  # an unreferenced file may be left by a crash
                    write_atomic(path, data)
                docs[doc_id] = sha
            else:
                if old_sha is None:
                    continue
                del docs[doc_id]
            if old_sha is not None:
                stale.append(self.snapshot_path(doc_id, old_sha))
            for doc_ids in change_sets.values():
                doc_ids.discard(doc_id)
            for row in rows:
                change_sets.setdefault(row.change_set_id, set()).add(doc_id)
        new_head = IUHead(
            docs=docs,
            change_sets={cs: tuple(sorted(ids)) for cs, ids in change_sets.items() if ids},
        )
        if new_head == head:
            return
        write_atomic(self._head_path, canonical(new_head))
        for path in stale:  # after the commit; a crash here only leaves a file nobody names
            with contextlib.suppress(OSError):
                remove(path)

    def _write_staged(self, rows: list[IURow]) -> int:
        for row in rows:
            check_doc_id(row.doc_id)
        head, _ = self._read_head()
        current = self._load(head, {r.doc_id for r in rows})
        held = {_key(r): r for doc_rows in current.values() for r in doc_rows}
        added: dict[_Key, IURow] = {}
        for row in rows:
            other = held.get(_key(row), added.get(_key(row)))
            if other is not None and (
                other.change_set_id != row.change_set_id or other.region_sha != row.region_sha
            ):
                raise StopVerifyFailed(
                    f"IU {row.doc_id}/{row.sv_id}#{row.ordinal} belongs to change set "
                    f"{other.change_set_id}"
                )
            if other is None:
                added[_key(row)] = row
        if not added:
            return 0
        for row in added.values():
            current[row.doc_id].append(row)
        self._commit(head, {d: current[d] for d in {r.doc_id for r in added.values()}})
        return len(added)

    def _enact(self, change_set_id: str) -> int:
        head, _ = self._read_head()
        current = self._load(head, set(head.change_sets.get(change_set_id, ())))
        mine = 0
        for doc_id, doc_rows in current.items():
            updated: list[IURow] = []
            for row in doc_rows:
                if row.change_set_id == change_set_id:
                    mine += 1
                    if row.state is not IUState.ACTIVE:
                        row = msgspec.structs.replace(row, state=IUState.ACTIVE)
                elif row.state is IUState.ACTIVE:
                    row = msgspec.structs.replace(row, state=IUState.SUPERSEDED)
                updated.append(row)
            current[doc_id] = updated
        if mine:
            self._commit(head, current)
        return mine

    def _save_backup(self, backup: Backup) -> str:
        backup_id = backup.backup_id
        path = self.backup_path(backup_id)
        data = canonical(backup)
        if not create_once(path, data) and read_bytes(path) != data:
            # Write-once and content-addressed: the same id must hold the same bytes.
            raise CorruptRecord(str(path), "differs from the backup its id names")
        return backup_id

    def _load_backup(self, backup_id: str) -> Backup:
        path = self.backup_path(backup_id)
        data = read_bytes(path)
        if data is None:
            raise CorruptRecord(str(path), "no such backup")
        backup = decode_record(_backup_decoder.decode, data, path)
        if backup.backup_id != backup_id:
            raise CorruptRecord(str(path), "does not match its id")
        return backup

    def _restore(self, backup: Backup) -> None:
        doc_id = check_doc_id(backup.doc_id)
        for row in backup.rows:
            check_doc_id(row.doc_id)
        if any(row.doc_id != doc_id for row in backup.rows):
            raise CorruptRecord(f"backup {backup.backup_id}", "holds rows of another document")
        head, _ = self._read_head()
        self._load(head, {doc_id})  # refuse, and write nothing, when what it replaces is corrupt
        by_key = {_key(row): row for row in backup.rows}
        self._commit(head, {doc_id: list(by_key.values())})


if TYPE_CHECKING:  # the store satisfies its port (checked by mypy, free at run time)
    from cutter.ports import IUStore

    _ius: IUStore = FileIUStore(Path())
