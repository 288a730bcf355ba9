"""The embedded database: one SQLite file, one writer connection, reads on the loop.

Opening (``open_database``) checks the file with ``PRAGMA quick_check`` (a damaged
page is ``StorageCorrupt`` naming it, before anything is read or written), sets WAL,
and applies the missing migrations (``cutter.stores.sqlite.migrate``).

Commits and durability. Every write is a function of the writer connection, given to
``write``, and commits in WAL mode with ``synchronous=NORMAL``: the commit appends to
the WAL without an ``fdatasync``. A committed write survives the process dying (kill
-9, a crash: the WAL is in the kernel's page cache), and the database is never
corrupted, but a power loss may take the last commits away, always a suffix: the WAL
replays in order and stops at the first frame that did not reach the disk. So the
database is always some prefix of the commits. What needs more is what was
*acknowledged* to someone outside (a reply, the end of a walk segment): that first
awaits ``durable()``, one commit under ``synchronous=FULL`` — an ``fdatasync`` of the
WAL, covering every commit before it — shared by every caller waiting at the time.
A walk thus syncs once per segment, not once per write.

Where the calls run (docs/storage.md has the profile). A small write with no batch in
flight commits at once on the event loop: tens of microseconds, no fsync, no thread
hop. The rest — bulk writes (leg A's rows, a document's bytes), durability barriers,
writes arriving while a batch is in the worker thread, a write finding another
process holding the write lock — are batched: the first to find no batch in flight
leads, handing every pending write (its own among them) to a worker thread that runs
them in ONE transaction, each under a savepoint of its own so a write that raises
undoes only itself; the next batch is led by the first write that arrived meanwhile.
One thread hop and at most one sync per batch, however many runs wrote into it.

A write's caller cannot cancel it half-way: ``write`` is shielded, and returns (or
raises) once its transaction is decided; a cancellation takes effect after that.

Reads run on the event loop, on a connection of their own (``query_only``), each a
short synchronous statement: in WAL mode they read the last committed state and
never wait for the writer.

Errors. SQLite's "disk full" is ``StorageFull``, "read-only"/"cannot open"/"permission"
``StorageReadOnly``, "corrupt"/"not a database" ``StorageCorrupt``, a lock another
process held past the busy timeout ``StorageBusy``, other I/O errors and any other
``sqlite3.Error`` (a constraint a write broke) a plain ``StorageError``: no raw
``sqlite3.Error`` leaves this module. The transaction is rolled back, so nothing is
half-applied, and the next write, once there is space again, starts from the last
commit.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from cutter.core.errors import (
    CutterError,
    StorageBusy,
    StorageCorrupt,
    StorageError,
    StorageFull,
    StorageReadOnly,
)
from cutter.runtime.failpoints import failpoint

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000  # another process (add-document) holding the write lock
OPEN_RETRY_S = 0.005  # between tries to switch a new file to WAL while another opens it
QUICK_CHECK_LINES = 5  # problems named in a StorageCorrupt
# The WAL is copied into the database (a PASSIVE checkpoint, in the worker thread, after
# a batch) once this many transactions were committed since the last copy (about
# 4 MiB of WAL at a walk's few pages each); SQLite's own automatic checkpoint would run
# inside whichever commit crossed its threshold, on the loop. A WAL file a burst grew
# past WAL_LIMIT_BYTES is truncated back to it when it restarts.
CHECKPOINT_COMMITS = 256
WAL_LIMIT_BYTES = 16 * 1024 * 1024

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
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StorageBusy(
            location,
            f"{reason}: another process held its write lock longer than "
            f"{BUSY_TIMEOUT_MS / 1000:g} s",
        )
    return None


def typed(exc: sqlite3.Error, location: str) -> CutterError:
    """The typed error for ``exc``: a storage error above, else a ``StorageError``
    naming SQLite's reason (a constraint, a statement a store got wrong), so no raw
    ``sqlite3.Error`` leaves the database."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return storage_error(exc, location) or StorageError(location, str(exc) or name)


@dataclass(eq=False)
class _Write(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    after_commit: str | None  # a failpoint reached once the transaction holding this commits
    durable: bool = False
    wake: anyio.Event = field(default_factory=anyio.Event)
    finished: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Turn:
    """The loop transaction of one turn of the event loop: the small writes of every
    task that ran in it, committed together by the first."""

    jobs: list[_Write[Any]] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)
    gone: sqlite3.Error | None = None  # SQLite rolled the transaction back under a job


class Database:
    """One open embedded database: see the module docstring. Make it with
    ``open_database``; the stores share one per state directory."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._pending: list[_Write[Any]] = []
        self._leading = False
        self._turn: _Turn | None = None  # the loop transaction open this turn, if any
        self._closed = False
        self._committed = 0  # transactions this process committed, in order
        self._durable_through = 0  # the last of them a WAL sync made durable
        self._checkpointed_at = 0  # the last of them before the latest checkpoint
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
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        bulk: bool = False,
        durable: bool = False,
        after_commit: str | None = None,
    ) -> T:
        """Run ``fn`` in a transaction of its own, or of the next batch; return its result
        once committed, or raise what ``fn`` raised (only its own writes undone) or the
        typed error that failed its transaction. Committed means crash-safe (a ``kill
        -9`` keeps it); ``durable`` makes it survive a power loss too.

        A small write with no batch in flight runs at once, on the loop, in the loop
        transaction of this turn of the loop, which commits (no fsync waits there:
        ``synchronous=NORMAL``) once every task the loop runs this turn had its chance
        to join; ``bulk`` ones (thousands of rows, megabytes) and those arriving while a
        batch is in the worker thread go through it, as do ``durable`` ones, which
        return once ``durable()`` would."""
        self._check_open()
        job: _Write[T] = _Write(fn, after_commit, durable)
        with anyio.CancelScope(shield=True):
            if bulk or durable or self._leading:
                await self._queue(job)
            elif self._turn is not None:
                turn = self._turn
                self._run(self._writer, job, turn)
                await turn.done.wait()
            elif self._begin():
                await self._lead_turn(job)
            else:  # another process holds the write lock: wait for it in a thread
                await self._queue(job)
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    async def durable(self) -> None:
        """Return once everything committed so far survives a power loss: one ``COMMIT``
        under ``synchronous=FULL`` (an ``fdatasync`` of the WAL, which holds every
        earlier commit too), shared by every caller waiting at the time. Free when
        nothing was committed since the last one. What is acknowledged (a reply, the end
        of a walk segment) waits for this first (``RunnerConfig.durable``)."""
        if self._durable_through >= self._committed:
            return
        try:
            await self.write(_mark_durable, bulk=True, durable=True)
        except StorageFull:
            # No room for the barrier's frame (a full disk): sync the files themselves,
            # which hold every commit, so what is committed is still acknowledged — a
            # full disk refuses writes, not the answers that read what is there.
            committed = self._committed
            await anyio.to_thread.run_sync(_sync_files, self.path)
            self._durable_through = max(self._durable_through, committed)

    def _begin(self) -> bool:
        """Open the loop transaction of this turn; False when another process holds the
        write lock (never waited for on the loop) or it cannot be opened now."""
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return False  # the thread path waits for the lock, or gives the typed error
        self._turn = _Turn()
        return True

    async def _lead_turn(self, job: _Write[Any]) -> None:
        """Run ``job`` in the loop transaction just opened, let every task the loop runs
        this turn add its writes, then commit them together."""
        turn = self._turn
        assert turn is not None
        self._run(self._writer, job, turn)
        await anyio.lowlevel.cancel_shielded_checkpoint()
        self._turn = None
        if turn.gone is None:
            self._commit(turn.jobs)
        else:  # SQLite rolled the transaction back under a job: none of them happened
            for done in turn.jobs:
                if done.error is None:
                    done.error, done.result = typed(turn.gone, self.location), None
                done.finished = True
        turn.done.set()
        if self._pending:  # bulk or durable writes waited for the connection
            self._leading = True
            self._pending[0].wake.set()

    async def _queue(self, job: _Write[Any]) -> None:
        """``job`` in the next batch in the worker thread."""
        self._pending.append(job)
        if self._leading or self._turn is not None:
            await job.wake.wait()  # finished in a batch, or promoted to lead
        if not job.finished:
            await self._lead(job)

    async def _lead(self, job: _Write[Any]) -> None:
        self._leading = True
        try:
            while not job.finished:
                batch, self._pending = self._pending, []
                await anyio.to_thread.run_sync(self._in_thread, batch)
                for other in batch:
                    if other is not job:
                        other.wake.set()
        finally:
            if self._pending:
                self._pending[0].wake.set()  # not finished: it leads the next batch
            else:
                self._leading = False

    def _in_thread(self, batch: list[_Write[Any]]) -> None:
        """One batch in the worker thread: wait for another process's write lock up to
        ``BUSY_TIMEOUT_MS``, sync the WAL when a job asks for durability. It never
        raises: a job it could not run is finished with a typed error, so no caller of
        the batch waits for ever and none sees a raw ``sqlite3.Error``."""
        conn = self._writer
        durable = any(job.durable for job in batch)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if durable:
                conn.execute("PRAGMA synchronous = FULL")
            self._transaction(batch)
        except sqlite3.Error as exc:  # a pragma before the transaction failed
            for job in batch:
                if not job.finished:
                    job.error, job.result, job.finished = typed(exc, self.location), None, True
        try:
            if self._committed - self._checkpointed_at >= CHECKPOINT_COMMITS:
                self._checkpointed_at = self._committed
                # PASSIVE never waits and never fails for a busy reader: what it cannot
                # copy now, the checkpoint after a later batch copies. Nor does a failed
                # copy (no space to grow the file) undo the commits: it is left for later.
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA busy_timeout = 0")
                if durable:
                    conn.execute("PRAGMA synchronous = NORMAL")

    def _transaction(self, batch: list[_Write[Any]]) -> None:
        """``batch`` in one transaction: each job under a savepoint of its own when
        there are several, so a job that raises undoes only itself."""
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:
                batch[0].result = batch[0].fn(conn)
            else:
                for job in batch:
                    self._run(conn, job)
        except Exception as exc:  # one job alone raised, or the transaction is gone
            if conn.in_transaction:
                conn.rollback()
            for job in batch:  # a write that refused itself keeps its own reason
                if job.error is None:
                    # One instance per caller: an exception raised in two tasks would
                    # carry both tasks' tracebacks.
                    job.error = typed(exc, self.location) if isinstance(exc, sqlite3.Error) else exc
                job.result = None
                job.finished = True
            return
        self._commit(batch)

    def _commit(self, batch: list[_Write[Any]]) -> None:
        """Commit the open transaction holding ``batch``; every job is finished after,
        with its result or an error of its own."""
        conn = self._writer
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            for job in batch:
                if job.error is None:
                    job.error = typed(exc, self.location)  # one instance per caller
                job.result = None
                job.finished = True
            return
        committed = self._committed + 1
        self._committed = committed
        if any(job.durable for job in batch):
            self._durable_through = committed
        self.batches += 1
        self.writes += len(batch)
        for job in batch:
            job.finished = True
        for job in batch:
            if job.after_commit is not None and job.error is None:
                failpoint(job.after_commit)

    def _run(self, conn: sqlite3.Connection, job: _Write[Any], turn: _Turn | None = None) -> None:
        """``job`` under a savepoint of its own in the open transaction; in a loop
        ``turn``, a job that finds the transaction gone records it there."""
        if turn is not None:
            turn.jobs.append(job)
            if turn.gone is not None:
                return  # the turn's transaction is gone: its leader fails every job
        conn.execute("SAVEPOINT job")
        try:
            job.result = job.fn(conn)
        except sqlite3.Error as exc:
            if not conn.in_transaction:
                if turn is None:
                    raise  # SQLite rolled the transaction back (disk full, I/O): fail the batch
                turn.gone = exc
                return
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


def _mark_durable(conn: sqlite3.Connection) -> None:
    """A barrier's write: a commit under ``synchronous=FULL`` syncs the WAL only when it
    writes a frame."""
    conn.execute("UPDATE durable_mark SET n = n + 1 WHERE id = 1")


def _sync_files(path: Path) -> None:
    """fsync the database's WAL and main file: a barrier that writes nothing. Raises
    ``StorageFull`` (what made it needed) when a file cannot be synced."""
    for name in (f"{path}-wal", str(path)):
        try:
            fd = os.open(name, os.O_RDONLY)
        except FileNotFoundError:
            continue  # no WAL now: every commit is in the main file
        except OSError as exc:
            raise StorageFull(str(path), f"cannot sync: {exc.strerror}") from None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise StorageFull(str(path), f"cannot sync: {exc.strerror}") from None
        finally:
            os.close(fd)


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


def _write_ahead(conn: sqlite3.Connection) -> str:
    """Switch a new database to WAL (a no-op read once it is). The switch needs the
    file alone, and SQLite answers ``SQLITE_BUSY`` at once, without its busy handler,
    while another process is opening the same new file (the handler could deadlock
    there): retried for up to ``BUSY_TIMEOUT_MS``."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "") == "SQLITE_BUSY"
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(OPEN_RETRY_S)


def open_now(path: Path, *, create: bool = True) -> Database:
    """The database at ``path``, opened on the calling thread (``open_database`` is the
    async form); the caller closes it."""
    from cutter.stores.sqlite.migrate import migrate

    location = str(path)
    writer: sqlite3.Connection | None = None
    reader: sqlite3.Connection | None = None
    try:
        writer = _connect(path, uri_mode="rwc" if create else "rw")
        _quick_check(writer, location)
        mode = _write_ahead(writer)
        if str(mode).lower() != "wal":
            raise StorageReadOnly(location, f"cannot use write-ahead logging (journal_mode {mode})")
        writer.execute("PRAGMA synchronous = NORMAL")  # FULL only for a barrier's commit
        writer.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run in the worker thread
        writer.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        migrate(writer)
        writer.execute("PRAGMA busy_timeout = 0")  # a write on the loop never waits
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
