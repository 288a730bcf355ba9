"""File-backed target stores: source versions, IU rows and backups, the ledger.

They are the embedded default's production data and survive ``kill -9``. Their
semantics are those of ``cutter.stores.memory_target`` (and of PostgreSQL); the
contract tests in ``tests/pg/test_adapters.py`` run over all three.

Layout (each store has a root of its own; the daemon uses
``<state>/target/{sources,ius,ledger}``)::

    <sources>/versions/<sv_id>.bin      a version's exact bytes              write-once
    <sources>/versions/<sv_id>.json     its SourceVersion (the commit point)  write-once
    <sources>/cuts/<sv_id>.json         the change set that cut it            write-once
    <sources>/current/<doc_id>.json     the document's current SourceVersion  replaced

    <ius>/HEAD.json                     which snapshot holds each document's rows, and
                                        which documents each change set has rows in
    <ius>/docs/<doc_id>/<sha256>.json   every row of one document, named by the sha256
                                        of the file's bytes                   write-once
    <ius>/backups/<backup_id>.json      a Backup, content-addressed           write-once

    <ledger>/ledger.jsonl               one entry per line: seq, prev_hash, entry_hash,
                                        envelope_sha and the canonical envelope bytes
                                        (embedded verbatim as JSON)           replaced

Crash argument. Files are changed in two ways only, both from
``cutter.stores.atomic`` or built on its steps: a *replace* (temp file in the
same directory, fsync, ``os.replace``, fsync the directory) and a *write-once*
create (temp file, fsync, ``os.link`` onto the name, which fails when the name
exists, fsync the directory). Either way a name holds its old bytes or its new
bytes, never a mix, whichever instruction a crash interrupts; at worst a
``.<name>.<random>.tmp`` file is left behind, which no read ever opens.

- ``publish`` writes the bytes, then the version record (write-once: from then
  on the version exists), then replaces the current pointer. A crash in between
  leaves a version that is not current yet; publishing again finishes the job.
  ``content`` checks the bytes against the version's sha256.
- ``mark_cut`` is one write-once create: the first change set wins, in any
  number of processes.
- Every change to IU rows (a whole ``write_staged`` batch, ``enact``,
  ``restore``) writes new document snapshots under new names, then replaces
  ``HEAD.json``: that one rename is the commit point, whatever documents the
  batch touches. Before it, readers see the old HEAD and the old snapshots (the
  new files are not named by anything); after it, the new ones. Snapshots the
  new HEAD no longer names are removed after the rename; a crash before that
  leaves an unreferenced file, never read. A snapshot is checked against the
  sha256 HEAD names, so a changed or truncated one is ``CorruptRecord``.
- A ledger append replaces the whole file with the old bytes, unchanged, plus
  one line: no half entry can ever be read.

Reads never repair: an undecodable file raises ``CorruptRecord`` naming it and
is left exactly as found; a write that would have to read it refuses the same
way and writes nothing. Every id is validated (``cutter.ids``) before a path is
built from it; a hostile one raises ``InvalidIdentifier`` and touches nothing.

Concurrency. One process (the daemon) writes these stores; many of its
coroutines may call them at once. Each store serialises its writers with an
``anyio.Lock`` held across the worker thread that does the blocking work, so
two appends or two batches cannot lose an update. Use one instance per root in
a process. Readers take no lock: a reader that read the old HEAD and finds its
snapshot removed reads HEAD again.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
import msgspec

from cutter.canonical import canonical, sha256_hex
from cutter.errors import (
    CorruptRecord,
    InvalidIdentifier,
    StopVerifyFailed,
    UnknownDocument,
    one_line,
)
from cutter.ids import check_doc_id, check_token
from cutter.ledger import (
    LedgerEntry,
    LedgerEnvelope,
    StoredEntry,
    decode_envelope,
    next_entry,
    verify_stored,
)
from cutter.records import Backup, IURow, IUState, SourceVersion
from cutter.stores.atomic import TEMP_SUFFIX, fsync_dir, make_dirs, read_bytes, remove, write_atomic

_HEX64 = re.compile(r"[0-9a-f]{64}")
_READ_ATTEMPTS = 16  # a reader re-reads HEAD at most this often while writers move on
S = TypeVar("S")


# -- primitives -------------------------------------------------------------------------


def create_once(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless the name exists; True when this call did.

    The bytes are complete and fsynced in a temp file before ``os.link`` gives
    them the name (the link fails when the name exists, in any process), so the
    name never holds a partial file."""
    directory = path.parent
    make_dirs(directory)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
    fsync_dir(directory)
    return True


def _inside(root: Path, path: Path, kind: str) -> Path:
    if not path.resolve().is_relative_to(root.resolve()):
        raise InvalidIdentifier(kind, "resolves outside the store root")
    return path


def _check_sv_id(sv_id: object) -> str:
    return check_token("sv_id", sv_id)


def _decode(decode: Callable[[bytes], S], data: bytes, where: Path | str) -> S:
    try:
        return decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(str(where), one_line(str(exc), 200)) from exc


def derived_sv_id(doc_id: str, data: bytes) -> str:
    """The version id ``cutter.pg.target.publish`` gives: same document and bytes, same id."""
    return "sv-" + sha256_hex(f"{doc_id}\x00{sha256_hex(data)}".encode())[:24]


# -- sources ----------------------------------------------------------------------------


class CutMark(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sv_id: str
    change_set_id: str


_version_decoder = msgspec.json.Decoder(SourceVersion)
_cut_decoder = msgspec.json.Decoder(CutMark)


class FileSources:
    """``SourceRepository`` (plus ``publish``) under ``root``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._lock = anyio.Lock()

    @property
    def root(self) -> Path:
        return self._root

    def version_path(self, sv_id: str) -> Path:
        """The version record (validated; the file need not exist)."""
        path = self._root / "versions" / (_check_sv_id(sv_id) + ".json")
        return _inside(self._root, path, "sv_id")

    def bytes_path(self, sv_id: str) -> Path:
        path = self._root / "versions" / (_check_sv_id(sv_id) + ".bin")
        return _inside(self._root, path, "sv_id")

    def cut_path(self, sv_id: str) -> Path:
        return _inside(self._root, self._root / "cuts" / (_check_sv_id(sv_id) + ".json"), "sv_id")

    def current_path(self, doc_id: str) -> Path:
        path = self._root / "current" / (check_doc_id(doc_id) + ".json")
        return _inside(self._root, path, "doc_id")

    async def publish(
        self, doc_id: str, data: bytes, *, sv_id: str | None = None, sd_id: str | None = None
    ) -> SourceVersion:
        """Store ``data`` as the document's current version (an ingest step).

        Without ``sv_id`` the id is derived from the document and the bytes, so
        publishing the same bytes twice is one version. An ``sv_id`` that names
        another version already is refused (``InvalidIdentifier``)."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._publish, doc_id, bytes(data), sv_id, sd_id)

    async def current(self, doc_id: str) -> SourceVersion:
        return await anyio.to_thread.run_sync(self._current, doc_id)

    async def content(self, sv_id: str) -> bytes:
        return await anyio.to_thread.run_sync(self._content, sv_id)

    async def mark_cut(self, sv_id: str, change_set_id: str) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._mark_cut, sv_id, change_set_id)

    async def cut_by(self, sv_id: str) -> str | None:
        return await anyio.to_thread.run_sync(self._cut_by, sv_id)

    def _publish(
        self, doc_id: str, data: bytes, sv_id: str | None, sd_id: str | None
    ) -> SourceVersion:
        doc_id = check_doc_id(doc_id)
        sv_id = _check_sv_id(sv_id if sv_id is not None else derived_sv_id(doc_id, data))
        version = SourceVersion(
            doc_id=doc_id,
            sd_id=sd_id or f"sd-{doc_id}",
            sv_id=sv_id,
            sha256=sha256_hex(data),
            size=len(data),
        )
        meta_path, bytes_path = self.version_path(sv_id), self.bytes_path(sv_id)
        current_path = self.current_path(doc_id)
        record = canonical(version)
        stored = read_bytes(meta_path)
        if stored is None:
            # No version record: any bytes file is left from a publish that never
            # committed, and nothing names it. The record is the commit point.
            write_atomic(bytes_path, data)
            if not create_once(meta_path, record):
                stored = read_bytes(meta_path)  # another process committed first
        if stored is not None:
            held = _decode(_version_decoder.decode, stored, meta_path)
            if held != version:
                raise InvalidIdentifier(
                    "sv_id", f"{sv_id} names another version (of {held.doc_id}) already"
                )
            if read_bytes(bytes_path) != data:
                raise CorruptRecord(str(bytes_path), "does not hold the version's bytes")
        if read_bytes(current_path) != record:
            write_atomic(current_path, record)
        return version

    def _current(self, doc_id: str) -> SourceVersion:
        path = self.current_path(doc_id)
        data = read_bytes(path)
        if data is None:
            raise UnknownDocument(doc_id)
        version = _decode(_version_decoder.decode, data, path)
        if version.doc_id != doc_id:
            raise CorruptRecord(str(path), f"names document {version.doc_id[:60]!r}")
        try:
            _check_sv_id(version.sv_id)
        except InvalidIdentifier as exc:
            raise CorruptRecord(str(path), exc.message) from exc
        return version

    def _content(self, sv_id: str) -> bytes:
        meta_path, bytes_path = self.version_path(sv_id), self.bytes_path(sv_id)
        stored = read_bytes(meta_path)
        if stored is None:
            raise CorruptRecord(str(meta_path), "no such version")
        version = _decode(_version_decoder.decode, stored, meta_path)
        if version.sv_id != sv_id:
            raise CorruptRecord(str(meta_path), f"holds version {version.sv_id[:60]!r}")
        data = read_bytes(bytes_path)
        if data is None:
            raise CorruptRecord(str(bytes_path), "missing")
        if len(data) != version.size or sha256_hex(data) != version.sha256:
            raise CorruptRecord(str(bytes_path), "does not match the version's sha256")
        return data

    def _mark_cut(self, sv_id: str, change_set_id: str) -> None:
        path = self.cut_path(sv_id)
        if not self.version_path(sv_id).is_file():
            return  # an unknown version is ignored, as PostgreSQL's UPDATE matches nothing
        create_once(path, canonical(CutMark(sv_id=sv_id, change_set_id=change_set_id)))

    def _cut_by(self, sv_id: str) -> str | None:
        path = self.cut_path(sv_id)
        data = read_bytes(path)
        if data is None:
            return None
        mark = _decode(_cut_decoder.decode, data, path)
        if mark.sv_id != sv_id:
            raise CorruptRecord(str(path), f"names version {mark.sv_id[:60]!r}")
        return mark.change_set_id


# -- IU rows and backups ----------------------------------------------------------------


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
        return _inside(self._root, path, "doc_id")

    def backup_path(self, backup_id: str) -> Path:
        path = self._root / "backups" / (check_token("backup_id", backup_id) + ".json")
        return _inside(self._root, path, "backup_id")

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
        head = _decode(_head_decoder.decode, data, self._head_path)
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
        snapshot = _decode(_doc_decoder.decode, data, path)
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
        backup = _decode(_backup_decoder.decode, data, path)
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


# -- ledger -----------------------------------------------------------------------------


class LedgerLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One stored entry; ``envelope`` is the canonical envelope bytes, verbatim."""

    seq: int
    prev_hash: str
    entry_hash: str
    envelope_sha: str
    envelope: msgspec.Raw


_line_decoder = msgspec.json.Decoder(LedgerLine)
LEDGER_FILE = "ledger.jsonl"


class FileLedger:
    """``Ledger`` (plus ``verify``) in ``root/ledger.jsonl``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._path = self._root / LEDGER_FILE
        self._lock = anyio.Lock()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def path(self) -> Path:
        return self._path

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._append, envelope)

    async def entries(self) -> list[LedgerEntry]:
        data = await anyio.to_thread.run_sync(read_bytes, self._path)
        return [entry for _, entry in self._parse(data)]

    async def verify(self) -> str:
        """Verify the chain over the stored bytes; the head hash, or ``ChainBroken``."""
        data = await anyio.to_thread.run_sync(read_bytes, self._path)
        return verify_stored(
            [
                StoredEntry(
                    line.seq,
                    line.prev_hash,
                    line.entry_hash,
                    bytes(line.envelope),
                    line.envelope_sha,
                )
                for line in self._lines(data)
            ]
        )

    def _lines(self, data: bytes | None) -> list[LedgerLine]:
        if not data:
            return []
        if not data.endswith(b"\n"):
            raise CorruptRecord(str(self._path), "ends in a partial line")
        return [
            _decode(_line_decoder.decode, text, f"{self._path} line {number}")
            for number, text in enumerate(data[:-1].split(b"\n"), start=1)
        ]

    def _parse(self, data: bytes | None) -> list[tuple[LedgerLine, LedgerEntry]]:
        parsed: list[tuple[LedgerLine, LedgerEntry]] = []
        for number, line in enumerate(self._lines(data), start=1):
            envelope = _decode(decode_envelope, bytes(line.envelope), f"{self._path} line {number}")
            entry = LedgerEntry(
                seq=line.seq,
                prev_hash=line.prev_hash,
                entry_hash=line.entry_hash,
                envelope=envelope,
            )
            parsed.append((line, entry))
        return parsed

    def _append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        data = read_bytes(self._path) or b""
        parsed = self._parse(data)
        for _, entry in parsed:
            if entry.envelope == envelope:
                return entry
        entry = next_entry(parsed[-1][1] if parsed else None, envelope)
        body = canonical(envelope)
        line = LedgerLine(
            seq=entry.seq,
            prev_hash=entry.prev_hash,
            entry_hash=entry.entry_hash,
            envelope_sha=sha256_hex(body),
            envelope=msgspec.Raw(body),
        )
        write_atomic(self._path, data + msgspec.json.encode(line) + b"\n")
        return entry


if TYPE_CHECKING:  # the stores satisfy the ports (checked by mypy, free at run time)
    from cutter.ports import IUStore, Ledger, SourceRepository

    _sources: SourceRepository = FileSources(Path())
    _ius: IUStore = FileIUStore(Path())
    _ledger: Ledger = FileLedger(Path())
