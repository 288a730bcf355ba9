"""Group commit of the embedded database (``cutter.stores.sqlite.database``): what its writes
promise. Concurrent writes share transactions; a caller returns only once its write
is committed (a ``kill -9`` right after cannot lose it, nor one mid-batch half-apply
it; surviving a power loss is ``durable()``'s, tested in ``test_barrier.py``); a
write that fails undoes itself alone; a cancelled caller's write is whole; reads on
the loop never wait for a batch in flight.

No timer decides anything: a write function that blocks on a ``threading.Event``
holds a batch in the worker thread while the test acts, and ``wait_all_tasks_blocked``
says when every other caller is queued behind it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from cutter.core.errors import CutterError, InvalidIdentifier, StorageError
from cutter.core.state_dir import StateDir
from cutter.stores.sqlite.database import Database, open_database
from cutter.stores.sqlite.records import SqliteKnowledgeBase
from tests.sqlite._procs import child

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(StateDir(tmp_path).database) as opened:
        yield opened


def insert(*kb_ids: str) -> Callable[[sqlite3.Connection], None]:
    def write(conn: sqlite3.Connection) -> None:
        for kb_id in kb_ids:
            conn.execute("INSERT INTO kb_docs (kb_id, doc) VALUES (?, ?)", (kb_id, b"{}"))

    return write


def kb_ids(db: Database) -> list[str]:
    return [r[0] for r in db.all("SELECT kb_id FROM kb_docs ORDER BY kb_id")]


def committed_ids(path: Path) -> list[str]:
    """What a connection of its own reads: only committed transactions."""
    with closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT kb_id FROM kb_docs ORDER BY kb_id")]


class Held:
    """A write that inserts ``held/…`` (or runs ``write``) and then waits in the worker
    thread, holding its batch open, until ``release``; writes arriving meanwhile queue
    for the next batch."""

    def __init__(
        self, *kb_ids: str, write: Callable[[sqlite3.Connection], object] | None = None
    ) -> None:
        self.write = write or insert(*(kb_ids or ("held/0",)))
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, conn: sqlite3.Connection) -> str:
        self.write(conn)
        self.entered.set()
        self.gate.wait()
        return "held"

    async def run(self, db: Database) -> object:
        """The write, through the worker thread (``bulk``): a small write with no batch
        in flight would commit on the loop, which the wait would block."""
        return await db.write(self, bulk=True)

    async def started(self) -> None:
        await anyio.to_thread.run_sync(self.entered.wait)

    def release(self) -> None:
        self.gate.set()


async def test_concurrent_writes_are_batched_into_fewer_transactions(db: Database) -> None:
    held = Held()
    before = (db.batches, db.writes)
    async with anyio.create_task_group() as tg:
        tg.start_soon(held.run, db)
        await held.started()
        for n in range(20):
            tg.start_soon(db.write, insert(f"w/{n:02}"))
        await anyio.wait_all_tasks_blocked()  # all 20 queued behind the held batch
        held.release()
    assert (db.batches - before[0], db.writes - before[1]) == (2, 21)
    assert kb_ids(db) == ["held/0"] + [f"w/{n:02}" for n in range(20)]


async def test_a_write_returns_only_once_its_batch_is_committed(db: Database) -> None:
    for n in range(5):
        await db.write(insert(f"w/{n}"))
        assert committed_ids(db.path)[-1] == f"w/{n}"


@pytest.mark.subprocess
def test_an_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    with child("acks", str(path)) as proc:
        acked = [proc.line() for _ in range(30)]
        proc.kill()
    assert acked == [f"ack {n}" for n in range(30)]
    found = committed_ids(path)
    assert {f"ack/{n}" for n in range(30)} <= set(found)  # a write not yet acknowledged may be too


@pytest.mark.subprocess
def test_kill_9_mid_batch_leaves_the_batch_absent_and_the_database_whole(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    with child("midbatch", str(path), "5") as proc:
        proc.expect("kept")
        proc.expect("in-batch")  # the batch's row is inserted, its COMMIT not reached
        proc.kill()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert committed_ids(path) == [f"kept/{n}" for n in range(5)]


async def test_a_failing_write_undoes_itself_alone(db: Database) -> None:
    def refuses(conn: sqlite3.Connection) -> None:
        insert("bad/0")(conn)
        raise InvalidIdentifier("kb_id", "refused after writing")

    outcomes: dict[str, BaseException | None] = {}

    async def run(name: str, fn: Callable[[sqlite3.Connection], object]) -> None:
        try:
            await db.write(fn)
        except Exception as exc:  # kept for the assertions below
            outcomes[name] = exc
        else:
            outcomes[name] = None

    held = Held()
    async with anyio.create_task_group() as tg:
        tg.start_soon(held.run, db)
        await held.started()
        tg.start_soon(run, "a", insert("ok/a"))
        tg.start_soon(run, "domain", refuses)
        tg.start_soon(run, "duplicate", insert("dup/0", "ok/a"))  # a constraint refuses it
        tg.start_soon(run, "b", insert("ok/b"))
        await anyio.wait_all_tasks_blocked()
        held.release()
    assert outcomes["a"] is None
    assert outcomes["b"] is None
    assert isinstance(outcomes["domain"], InvalidIdentifier)
    duplicate = outcomes["duplicate"]
    assert isinstance(duplicate, StorageError), repr(duplicate)  # typed, not sqlite3's
    assert duplicate.code == "E_STORAGE"
    assert kb_ids(db) == ["held/0", "ok/a", "ok/b"]  # no bad/0, no dup/0


async def test_a_cancelled_callers_write_is_whole(db: Database) -> None:
    """Cancelled while its batch runs (the leader) or while queued behind it: each
    write lands whole (both its rows), and the cancellation ends the callers after."""
    held = Held("lead/0", "lead/1")
    async with anyio.create_task_group() as tg:
        tg.start_soon(held.run, db)
        await held.started()
        tg.start_soon(db.write, insert("queued/0", "queued/1"))
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
        held.release()
    assert tg.cancel_scope.cancelled_caught
    assert kb_ids(db) == ["lead/0", "lead/1", "queued/0", "queued/1"]


async def test_reads_do_not_wait_for_a_batch_in_flight(db: Database) -> None:
    kb = SqliteKnowledgeBase(db)
    await db.write(insert("before/0"))
    held = Held("during/0")
    async with anyio.create_task_group() as tg:
        tg.start_soon(held.run, db)
        await held.started()  # the batch holds the write lock, uncommitted
        assert kb_ids(db) == ["before/0"]  # the last commit, read at once on the loop
        assert await kb.list("") == ["before/0"]
        with pytest.raises(KeyError):
            await kb.get("during/0")
        held.release()
    assert kb_ids(db) == ["before/0", "during/0"]


async def test_no_raw_sqlite_error_escapes_a_read(db: Database) -> None:
    with pytest.raises(CutterError) as caught:
        db.all("SELECT nothing FROM no_such_table")
    assert isinstance(caught.value, StorageError)
    with pytest.raises(StorageError):
        db.value("SELECT 1 FROM kb_docs WHERE kb_id = ?", ())  # a wrong number of arguments


async def test_a_constraint_a_write_breaks_on_the_loop_is_typed(db: Database) -> None:
    await db.write(insert("once/0"))  # a small write with no batch in flight: on the loop
    with pytest.raises(StorageError) as caught:
        await db.write(insert("once/1", "once/0"))
    assert "UNIQUE constraint failed" in caught.value.message
    assert kb_ids(db) == ["once/0"]  # nor did once/1 land
