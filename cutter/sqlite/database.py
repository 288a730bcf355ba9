"""The embedded database: one SQLite file, one writer with group commit, reads on the loop.

Opening (``open_database``) checks the file with ``PRAGMA quick_check`` (a damaged
page is ``StorageCorrupt`` naming it, before anything is read or written), sets WAL
and ``synchronous=FULL``, and applies the missing migrations (``cutter.sqlite.migrate``).

Writes. Every write is a function of the writer connection, given to ``write``.
Writes of all concurrent callers are batched: the first caller to find no batch in
flight leads; it hands the pending writes (its own among them) to a worker thread,
which runs them in ONE transaction (``BEGIN IMMEDIATE`` … ``COMMIT``), each under a
savepoint of its own, so a write that raises undoes only itself. Writes that arrive
while a batch is in the thread wait for the next batch, which the first of them
leads. ``COMMIT`` in WAL mode with ``synchronous=FULL`` is one ``fdatasync`` of the
WAL, so a batch of any size costs one sync, and no caller returns before the batch
that holds its write is durable. One thread hop per batch, not per call.

A write's callers cannot cancel it half-way: ``write`` is shielded, and returns (or
raises) once its batch is decided; a cancellation takes effect after that.

Reads run on the event loop, on a connection of their own (``query_only``), each a
short synchronous statement (or a ``BEGIN``/``COMMIT`` pair with no await between):
in WAL mode they read the last committed state and never wait for the writer.

Errors. SQLite's "disk full" is ``StorageFull``, "read-only"/"cannot open"/"permission"
``StorageReadOnly``, "corrupt"/"not a database" ``StorageCorrupt``; the transaction is
rolled back by SQLite, so nothing is half-applied, and the next write, once there is
space again, starts from the last commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread

from cutter.errors import CutterError, StorageCorrupt, StorageError, StorageFull, StorageReadOnly
from cutter.failpoints import failpoint

T = TypeVar("T")

FILE_NAME = "cutter.sqlite3"
BUSY_TIMEOUT_MS = 10_000  # another process (add-document) holding the write lock
QUICK_CHECK_LINES = 5  # problems named in a StorageCorrupt

_FULL = {"SQLITE_FULL"}
_READ_ONLY = {
    "SQLITE_READONLY",
    "SQLITE_READONLY_DIRECTORY",
    "SQLITE_READONLY_DBMOVED",
    "SQLITE_READONLY_RECOVERY",
    "SQLITE_READONLY_CANTINIT",
    "SQLITE_READONLY_CANTLOCK",
    "SQLITE_READONLY_ROLLBACK",
    "SQLITE_CANTOPEN",
    "SQLITE_PERM",
    "SQLITE_AUTH",
    "SQLITE_IOERR_ACCESS",
}
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_INDEX", "SQLITE_CORRUPT_SEQUENCE"}


def storage_error(exc: sqlite3.Error, location: str) -> CutterError | None:
    """The typed error ``exc`` is, or None when it is not about the storage."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    reason = str(exc) or name
    if name in _FULL or name.startswith("SQLITE_FULL"):
        return StorageFull(location, reason)
    if name in _READ_ONLY or name.startswith("SQLITE_READONLY"):
        return StorageReadOnly(location, reason)
    if name in _CORRUPT or name.startswith("SQLITE_CORRUPT"):
        return StorageCorrupt(location, reason)
    if name.startswith("SQLITE_IOERR"):
        return StorageError(location, reason)
    return None


def typed(exc: sqlite3.Error, location: str) -> BaseException:
    return storage_error(exc, location) or exc


@dataclass(eq=False)
class _Write(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    after_commit: str | None  # a failpoint reached once the batch holding this is durable
    wake: anyio.Event = field(default_factory=anyio.Event)
    finished: bool = False
    result: Any = None
    error: BaseException | None = None


class Database:
    """One open embedded database: see the module docstring. Make it with
    ``open_database``; the stores share one per state directory."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._pending: list[_Write[Any]] = []
        self._leading = False
        self._closed = False
        self.batches = 0  # transactions committed (the benchmarks report writes per batch)
        self.writes = 0

    @property
    def location(self) -> str:
        return str(self.path)

    # -- reads --------------------------------------------------------------------------

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` over the read connection, now, on the calling thread; typed errors."""
        self._check_open()
        try:
            return fn(self._reader)
        except sqlite3.Error as exc:
            if self._reader.in_transaction:
                self._reader.rollback()
            raise typed(exc, self.location) from exc

    def one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.read(lambda c: c.execute(sql, args).fetchone())
        return row

    def value(self, sql: str, args: tuple[object, ...] = ()) -> Any:
        row = self.one(sql, args)
        return None if row is None else row[0]

    def all(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self.read(lambda c: c.execute(sql, args).fetchall())

    # -- writes -------------------------------------------------------------------------

    async def write(
        self, fn: Callable[[sqlite3.Connection], T], *, after_commit: str | None = None
    ) -> T:
        """Run ``fn`` in the next batch; return its result once the batch is durable,
        or raise what ``fn`` raised (its savepoint rolled back, the batch goes on) or
        the typed error that failed the whole batch."""
        self._check_open()
        job: _Write[T] = _Write(fn, after_commit)
        with anyio.CancelScope(shield=True):
            self._pending.append(job)
            if self._leading:
                await job.wake.wait()  # finished in a batch, or promoted to lead
            if not job.finished:
                await self._lead(job)
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    async def _lead(self, job: _Write[Any]) -> None:
        self._leading = True
        try:
            while not job.finished:
                batch, self._pending = self._pending, []
                await anyio.to_thread.run_sync(self._commit, batch)
                for other in batch:
                    if other is not job:
                        other.wake.set()
        finally:
            if self._pending:
                self._pending[0].wake.set()  # not finished: it leads the next batch
            else:
                self._leading = False

    def _commit(self, batch: list[_Write[Any]]) -> None:
        """One transaction for the batch (in the worker thread)."""
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                self._run(conn, job)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the whole transaction is gone: no job happened
            if conn.in_transaction:
                conn.rollback()
            error = typed(exc, self.location)
            for job in batch:  # a write that refused itself keeps its own reason
                if not isinstance(job.error, CutterError) or isinstance(job.error, StorageError):
                    job.error = error
                job.result = None
                job.finished = True
            return
        self.batches += 1
        self.writes += len(batch)
        for job in batch:
            job.finished = True
        for job in batch:
            if job.after_commit is not None and job.error is None:
                failpoint(job.after_commit)

    def _run(self, conn: sqlite3.Connection, job: _Write[Any]) -> None:
        conn.execute("SAVEPOINT job")
        try:
            job.result = job.fn(conn)
        except sqlite3.Error as exc:
            if not conn.in_transaction:
                raise  # SQLite rolled the transaction back (disk full, I/O): fail the batch
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            job.error = typed(exc, self.location)
        except Exception as exc:  # the write refused itself (a domain error): undo it alone
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            job.error = exc
        else:
            conn.execute("RELEASE job")

    # -- lifecycle ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(self.location, "the database is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader.close()
        self._writer.close()


def _connect(path: Path, *, uri_mode: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"file:{path}?mode={uri_mode}",
        uri=True,
        isolation_level=None,  # autocommit: every transaction is an explicit BEGIN
        check_same_thread=False,  # the writer runs in anyio's worker threads, one at a time
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _quick_check(conn: sqlite3.Connection, location: str) -> None:
    rows = conn.execute(f"PRAGMA quick_check({QUICK_CHECK_LINES})").fetchall()
    problems = [str(r[0]) for r in rows if r[0] != "ok"]
    if problems:
        raise StorageCorrupt(location, "; ".join(problems))


def open_now(path: Path, *, create: bool = True) -> Database:
    """The database at ``path``, opened on the calling thread (``open_database`` is the
    async form); the caller closes it."""
    from cutter.sqlite.migrate import migrate

    location = str(path)
    writer: sqlite3.Connection | None = None
    reader: sqlite3.Connection | None = None
    try:
        writer = _connect(path, uri_mode="rwc" if create else "rw")
        _quick_check(writer, location)
        mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageReadOnly(location, f"cannot use write-ahead logging (journal_mode {mode})")
        writer.execute("PRAGMA synchronous = FULL")
        migrate(writer)
        reader = _connect(path, uri_mode="rw")
        reader.execute("PRAGMA query_only = ON")
        return Database(path, writer, reader)
    except sqlite3.Error as exc:
        for conn in (reader, writer):
            if conn is not None:
                conn.close()
        raise typed(exc, location) from exc
    except BaseException:
        for conn in (reader, writer):
            if conn is not None:
                conn.close()
        raise


@asynccontextmanager
async def open_database(path: Path, *, create: bool = True) -> AsyncIterator[Database]:
    """The database at ``path`` (made when ``create`` and missing), checked, migrated,
    closed on exit. Opening runs in a worker thread (``quick_check`` reads every page)."""
    db = await anyio.to_thread.run_sync(lambda: open_now(path, create=create))
    try:
        yield db
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(db.close)
