"""File-backed stores: the knowledge base, the run store and the kill switch.

Layout (give the KB and the run store different roots: KB ids start ``runs/``
too, and the two must never read each other's files)::

    <kb root>/<seg>/<seg>/<last>.json        one KB doc per file
    <run root>/runs/<run_id>.json            one sidecar per run
    <run root>/consumed/<encoded id>.json    one record per consumed approval
    <run root>/open/<doc_id>.json            the open run that holds a document
    <kill switch path>                       engaged while the file exists

Every id is validated before a path is built, and the built path must resolve
inside the root. Writes are atomic (``cutter.stores.atomic``); blocking file
work runs in a worker thread, except loading one sidecar (see
``FileRunStore.load``). Reads never repair: an undecodable file raises
``CorruptRecord`` naming it and is left exactly as found.

There is one writer: whoever can write the state directory writes the policy, the
approvals the daemon attests, the consumption journal and the kill switch as
easily as the sidecars (no counterpart of PostgreSQL's ``cutter_control``); LIVE
gates that take only ``"signature"`` proofs are the defence (docs/gates.md).

KB ids map to paths one to one because a segment other than the last may not
end in ``.json`` (``a.json/b`` would need a directory where ``a`` keeps its
file); both KB implementations refuse such ids.

Consumed approvals. An approval KB id contains ``/``, so its journal file is
named by replacing each ``/`` with ``~`` (a character no KB id may contain,
hence reversible and collision-free). A name longer than 200 characters
becomes its first 130 characters, ``~~`` and the sha256 of the id; ``~~``
cannot occur in a plain name (empty segments are invalid), so the two forms
never collide, and the record inside names the full id, which is checked on
read. The record is created with ``O_CREAT|O_EXCL``: across any number of
processes exactly one creates it, and that create is the commit point of
``save_consuming``. The sidecar is saved after it. A crash between the two
steps leaves a journal record for a run whose sidecar still waits at the gate
without the use: the approval stays consumed (it can never be used twice) and
the caller reconciles by asking ``consumed_by`` — when it names the same run,
the resume may record the use and carry on. Start-up recovery finds such runs
with ``consumed_for``: the journal is read once per store and indexed by run
(one process owns a state directory, so the index only grows by this store's
own consumptions).

One open run per document. ``create`` claims the document first, with an
``O_CREAT|O_EXCL`` record naming the run (``open/<doc_id>.json``), and only then
writes the run's first sidecar; saving the run's sidecar in a terminal state
removes the claim after the sidecar is written. A claim whose run has no sidecar
(a crash between the claim and the first save), whose sidecar is terminal (a crash
between the terminal save and the removal) or that is short (a crash while it was
written, before any sidecar) holds nothing: the next ``create`` of the document
takes it over. A claim whose run is open, or whose sidecar cannot be read, refuses
with ``DocumentBusy`` (fail closed). Taking over a claim is a remove and a new
``O_EXCL`` create under a lock every store on the root in this process shares: one
process owns a state directory (``cutter.stores.owner``), so no other process
takes over the same claim. The
first ``create`` of a store also lays the claims of open runs that have none (a
state directory written before claims existed).
"""

from __future__ import annotations

import bisect
import builtins
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.lowlevel
import anyio.to_thread
import msgspec

from cutter import codec
from cutter.canonical import sha256_hex
from cutter.db_approvals import is_database_approval, reserved
from cutter.errors import (
    ApprovalConsumedAlready,
    CorruptRecord,
    DocumentBusy,
    InvalidIdentifier,
    UnknownRun,
    one_line,
)
from cutter.failpoints import failpoint
from cutter.ids import check_doc_id, check_kb_id, check_run_id
from cutter.kbdocs import KBDoc
from cutter.quarantine import UnreadableRun, unreadable
from cutter.run_pages import RunFilter, fill_page
from cutter.run_revision import check_revision
from cutter.sidecar import ApprovalUse, Sidecar
from cutter.states import TERMINAL
from cutter.stores.atomic import create_exclusive, read_bytes, remove, write_atomic
from cutter.stores.encoding import encode_kb_doc, encode_sidecar
from cutter.stores.file_primitives import inside_root

SUFFIX = ".json"
# A listing of runs/ is kept only when the directory was last changed this long before.
RACY_LISTING_NS = 1_000_000_000
_MAX_PLAIN_NAME = 200
_HASHED_HEAD = 130


# -- rules both the file stores and the in-memory stores apply -----------------------


# -- knowledge base -------------------------------------------------------------------


class FileKnowledgeBase:
    """``KnowledgeBase`` with one JSON file per doc at ``root / (kb_id + ".json")``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, kb_id: str) -> Path:
        """Where the doc ``kb_id`` lives (validated; the file need not exist)."""
        *dirs, last = check_kb_id(kb_id).split("/")
        return inside_root(self._root, self._root.joinpath(*dirs, last + SUFFIX), "kb_id")

    async def put(self, kb_id: str, doc: KBDoc) -> None:
        await anyio.to_thread.run_sync(self._put, kb_id, doc)

    async def get(self, kb_id: str) -> KBDoc:
        return await anyio.to_thread.run_sync(self._get, kb_id)

    def _put(self, kb_id: str, doc: KBDoc) -> None:
        path = self.path_of(reserved(kb_id))
        data = encode_kb_doc(kb_id, doc)
        if read_bytes(path) == data:
            return
        write_atomic(path, data)

    def _get(self, kb_id: str) -> KBDoc:
        path = self.path_of(kb_id)
        # Only PostgreSQL's db_approvals table answers for db-approvals/ (a file
        # dropped there would otherwise claim the database's proof).
        data = None if is_database_approval(kb_id) else read_bytes(path)
        if data is None:
            raise KeyError(kb_id)
        return codec.decode_kb_doc(data, str(path))

    def _list(self, prefix: str) -> builtins.list[str]:
        if prefix:
            found = [prefix] if self.path_of(prefix).is_file() else []
            base = inside_root(self._root, self._root.joinpath(*prefix.split("/")), "kb_id")
        else:
            found, base = [], self._root
        for dirpath, _dirnames, filenames in os.walk(base):
            parts = Path(dirpath).relative_to(self._root).parts
            for name in filenames:
                if name.endswith(SUFFIX):
                    kb_id = "/".join((*parts, name[: -len(SUFFIX)]))
                    if is_kb_id(kb_id):
                        found.append(kb_id)
        return sorted(found)

    async def list(self, prefix: str) -> builtins.list[str]:
        """Sorted ids of the doc ``prefix`` and the docs below it; ``""`` lists all."""
        return await anyio.to_thread.run_sync(self._list, prefix)


# -- run store ------------------------------------------------------------------------


class ConsumedApproval(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One consumed-approval journal record."""

    approval_kb_id: str
    run_id: str
    consumed_at: datetime


_journal_decoder = msgspec.json.Decoder(ConsumedApproval)


class DocumentClaim(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The open run that holds a document (``open/<doc_id>.json``)."""

    doc_id: str
    run_id: str


_claim_decoder = msgspec.json.Decoder(DocumentClaim)
_claim_locks: dict[Path, threading.Lock] = {}
_claim_locks_guard = threading.Lock()


def _claim_lock(root: Path) -> threading.Lock:
    """The lock under which claims under ``root`` change, shared by every store of this
    process on that root (another process cannot own the same state directory)."""
    key = Path(os.path.abspath(root))
    with _claim_locks_guard:
        return _claim_locks.setdefault(key, threading.Lock())


def journal_name(approval_kb_id: str) -> str:
    """The journal file name of an approval id (see the module docstring)."""
    plain = check_kb_id(approval_kb_id).replace("/", "~")
    if len(plain) > _MAX_PLAIN_NAME:
        plain = plain[:_HASHED_HEAD] + "~~" + sha256_hex(approval_kb_id.encode())
    return plain + SUFFIX


class FileRunStore:
    """``RunStore`` with sidecars under ``root/runs`` and the journal under ``root/consumed``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._runs = self._root / "runs"
        self._consumed = self._root / "consumed"
        self._by_run: dict[str, set[str]] | None = None  # the journal by run, once read
        self._index_lock = threading.Lock()
        self._open = self._root / "open"
        self._claim_lock = _claim_lock(self._root)  # one per root in this process
        self._claims_laid = False  # open runs written before claims existed now hold one
        self._listing: tuple[int, list[str]] | None = None  # (runs/ mtime_ns, sorted ids)

    @property
    def root(self) -> Path:
        return self._root

    def sidecar_path(self, run_id: str) -> Path:
        return inside_root(self._root, self._runs / (check_run_id(run_id) + SUFFIX), "run_id")

    def journal_path(self, approval_kb_id: str) -> Path:
        return inside_root(self._root, self._consumed / journal_name(approval_kb_id), "kb_id")

    def claim_path(self, doc_id: str) -> Path:
        return inside_root(self._root, self._open / (check_doc_id(doc_id) + SUFFIX), "doc_id")

    async def load(self, run_id: str) -> Sidecar:
        """Read on the event loop, after a checkpoint, not in a worker thread.

        A sidecar is one small file this store wrote, read from the page cache in
        about 10 us. The hop to a worker and back (wake it, hand the GIL over and
        back, wake the loop) cost over 100 us of CPU: with 8 clients polling
        ``status`` it was more than half of the daemon's CPU per command. Writes
        (fsync) and listings stay in worker threads."""
        await anyio.lowlevel.checkpoint()  # a yield and cancellation point, as the hop was
        return self._load(run_id)

    async def create(self, sidecar: Sidecar) -> None:
        await anyio.to_thread.run_sync(self._create, sidecar)

    async def save(self, sidecar: Sidecar) -> None:
        await anyio.to_thread.run_sync(self._save, sidecar)

    async def save_consuming(self, sidecar: Sidecar, use: ApprovalUse) -> None:
        await anyio.to_thread.run_sync(self._save_consuming, sidecar, use)

    async def consumed_by(self, approval_kb_id: str) -> str | None:
        return await anyio.to_thread.run_sync(self._consumed_by, approval_kb_id)

    async def consumed_for(self, run_id: str) -> list[str]:
        run_id = check_run_id(run_id)
        return await anyio.to_thread.run_sync(self._consumed_for, run_id)

    async def run_ids(self) -> list[str]:
        return list(await anyio.to_thread.run_sync(self._run_ids))  # the kept listing stays ours

    async def page(self, after: str, limit: int, where: RunFilter) -> list[Sidecar | UnreadableRun]:
        return await anyio.to_thread.run_sync(self._page, after, limit, where)

    def _page(self, after: str, limit: int, where: RunFilter) -> list[Sidecar | UnreadableRun]:
        """Sidecars in id order after ``after``, read one by one until ``limit`` match:
        a filter that matches few runs reads many, but a walk through every page
        reads each sidecar once (each page starts after the last). Ids are ASCII, so
        str order is bytewise."""
        ids = self._run_ids()
        return fill_page(self._loaded(ids[bisect.bisect_right(ids, after) :]), limit, where)

    def _loaded(self, run_ids: list[str]) -> Iterator[Sidecar | UnreadableRun]:
        for run_id in run_ids:
            try:
                yield self._load(run_id)
            except (UnknownRun, InvalidIdentifier):  # gone since listed; not a run's name
                continue
            except (CorruptRecord, OSError) as exc:  # set aside, named (cutter.quarantine)
                yield unreadable(run_id, exc)

    def _run_ids(self) -> list[str]:
        """Every stored run id, sorted. The listing is kept while ``runs/`` keeps its
        mtime (every save renames a file into it, so any change moves it), and only
        when that mtime was at least ``RACY_LISTING_NS`` old when the listing began:
        a change in the same clock tick as the one before could leave the mtime as it
        was (git's "racy" rule), and must not hide a run behind a kept listing."""
        try:
            mtime = os.stat(self._runs).st_mtime_ns
        except FileNotFoundError:
            return []
        kept = self._listing
        if kept is not None and kept[0] == mtime:
            return kept[1]
        began = time.time_ns()
        ids: list[str] = []
        for name in os.listdir(self._runs):
            if name.endswith(SUFFIX):
                try:
                    ids.append(check_run_id(name[: -len(SUFFIX)]))
                except InvalidIdentifier:  # not a run's name
                    continue
        ids.sort()
        self._listing = (mtime, ids) if began - mtime >= RACY_LISTING_NS else None
        return ids

    def _load(self, run_id: str) -> Sidecar:
        path = self.sidecar_path(run_id)
        data = read_bytes(path)
        if data is None:
            raise UnknownRun(run_id)
        sidecar = codec.decode_sidecar(data, str(path))
        if sidecar.run_id != run_id:
            raise CorruptRecord(str(path), f"holds run {sidecar.run_id[:40]!r}")
        return sidecar

    def _save(self, sidecar: Sidecar) -> None:
        """Compare-and-save (``cutter.run_revision``) under the store's lock: one
        process at a time compares and writes (not across processes)."""
        data = encode_sidecar(sidecar)
        path = self.sidecar_path(sidecar.run_id)
        with self._claim_lock:
            check_revision(sidecar.run_id, self._stored_revision(sidecar.run_id), sidecar.revision)
            write_atomic(path, data)
            if sidecar.state in TERMINAL:
                claim = self.claim_path(sidecar.doc_id)
                if self._claim_holder(claim) == sidecar.run_id:
                    remove(claim)

    def _stored_revision(self, run_id: str) -> int | None:
        try:
            return self._load(run_id).revision
        except UnknownRun:
            return None

    def _create(self, sidecar: Sidecar) -> None:
        data = encode_sidecar(sidecar)
        path = self.sidecar_path(sidecar.run_id)
        claim = self.claim_path(sidecar.doc_id)
        record = codec.encode(DocumentClaim(doc_id=sidecar.doc_id, run_id=sidecar.run_id))
        with self._claim_lock:
            if not self._claims_laid:
                self._lay_missing_claims()
                self._claims_laid = True
            if not create_exclusive(claim, record):
                holder = self._claim_holder(claim)
                if holder is not None and holder != sidecar.run_id and self._holds(holder):
                    raise DocumentBusy(sidecar.doc_id, f"run {holder}")
                remove(claim)  # a claim that holds nothing: take it over
                if not create_exclusive(claim, record):
                    raise DocumentBusy(sidecar.doc_id, "another run")
            failpoint("create:claimed")
            write_atomic(path, data)

    def _claim_holder(self, claim: Path) -> str | None:
        """The run a claim names; None when there is none or it is unreadable (a crash
        while it was written: its run was never saved)."""
        data = read_bytes(claim)
        if data is None:
            return None
        try:
            return check_run_id(_claim_decoder.decode(data).run_id)
        except (msgspec.DecodeError, InvalidIdentifier):
            return None

    def _holds(self, run_id: str) -> bool:
        """Whether a claim's run still holds its document: its sidecar exists and is not
        terminal. An unreadable sidecar holds it (fail closed)."""
        try:
            return self._load(run_id).state not in TERMINAL
        except UnknownRun:
            return False
        except CorruptRecord:
            return True

    def _lay_missing_claims(self) -> None:
        for run_id in self._run_ids():
            try:
                sidecar = self._load(run_id)
            except CorruptRecord:
                continue
            if sidecar.state not in TERMINAL:
                record = codec.encode(DocumentClaim(doc_id=sidecar.doc_id, run_id=run_id))
                create_exclusive(self.claim_path(sidecar.doc_id), record)

    def _save_consuming(self, sidecar: Sidecar, use: ApprovalUse) -> None:
        data = encode_sidecar(sidecar)
        path = self.sidecar_path(sidecar.run_id)
        journal = self.journal_path(use.approval_kb_id)
        record = codec.encode(
            ConsumedApproval(
                approval_kb_id=use.approval_kb_id,
                run_id=sidecar.run_id,
                consumed_at=use.consumed_at,
            )
        )
        with self._claim_lock:
            # The consumption first, as PostgreSQL's transaction: a consumed approval
            # is ApprovalConsumedAlready whatever the revision.
            if read_bytes(journal) is not None:
                raise ApprovalConsumedAlready(sidecar.run_id, use.approval_kb_id)
            stored = self._stored_revision(sidecar.run_id)
            check_revision(sidecar.run_id, stored, sidecar.revision)
            if not create_exclusive(journal, record):
                raise ApprovalConsumedAlready(sidecar.run_id, use.approval_kb_id)
            with self._index_lock:
                if self._by_run is not None:
                    self._by_run.setdefault(sidecar.run_id, set()).add(use.approval_kb_id)
            failpoint("consume:journaled")
            write_atomic(path, data)

    def _consumed_for(self, run_id: str) -> list[str]:
        with self._index_lock:
            if self._by_run is None:
                self._by_run = self._read_journal()
            return sorted(self._by_run.get(run_id, ()))

    def _read_journal(self) -> dict[str, set[str]]:
        try:
            names = sorted(os.listdir(self._consumed))
        except FileNotFoundError:
            return {}
        by_run: dict[str, set[str]] = {}
        for name in names:
            path = self._consumed / name
            data = read_bytes(path)
            if data is None or not name.endswith(SUFFIX):
                continue
            try:
                record = _journal_decoder.decode(data)
                check_run_id(record.run_id)
                check_kb_id(record.approval_kb_id)
            except (msgspec.DecodeError, InvalidIdentifier) as exc:
                raise CorruptRecord(str(path), one_line(str(exc))) from exc
            if journal_name(record.approval_kb_id) != name:
                raise CorruptRecord(str(path), f"names {record.approval_kb_id[:60]!r}")
            by_run.setdefault(record.run_id, set()).add(record.approval_kb_id)
        return by_run

    def _consumed_by(self, approval_kb_id: str) -> str | None:
        path = self.journal_path(approval_kb_id)
        data = read_bytes(path)
        if data is None:
            return None
        try:
            record = _journal_decoder.decode(data)
            check_run_id(record.run_id)
        except (msgspec.DecodeError, InvalidIdentifier) as exc:
            raise CorruptRecord(str(path), one_line(str(exc))) from exc
        if record.approval_kb_id != approval_kb_id:
            raise CorruptRecord(str(path), f"names {record.approval_kb_id[:60]!r}")
        return record.run_id


# -- kill switch ----------------------------------------------------------------------


class KillSwitchNote(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    engaged_at: datetime


class FileKillSwitch:
    """``KillSwitch``: engaged while ``path`` exists. Fails closed: when the state
    cannot be read (any error but "not found") it reports engaged."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    @property
    def path(self) -> Path:
        return self._path

    async def engaged(self) -> bool:
        try:
            return await anyio.to_thread.run_sync(self._engaged)
        except Exception:
            return True

    async def engage(self, reason: str) -> None:
        """Engage (idempotent); the file records the reason and the time."""
        note = KillSwitchNote(reason=one_line(reason), engaged_at=datetime.now(UTC))
        await anyio.to_thread.run_sync(write_atomic, self._path, codec.encode(note))

    async def release(self) -> None:
        """Release (idempotent). Raises when the file cannot be removed."""
        await anyio.to_thread.run_sync(remove, self._path)

    def _engaged(self) -> bool:
        try:
            os.stat(self._path)
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True
        return True


if TYPE_CHECKING:  # the stores satisfy the ports (checked by mypy, free at run time)
    from cutter.ports import KillSwitch, KnowledgeBase, RunStore

    _kb: KnowledgeBase = FileKnowledgeBase(Path())
    _runs: RunStore = FileRunStore(Path())
    _switch: KillSwitch = FileKillSwitch(Path())


def is_kb_id(kb_id: str) -> bool:
    try:
        check_kb_id(kb_id)
    except InvalidIdentifier:
        return False
    return True
