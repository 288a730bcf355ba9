"""Where the embedded database syncs, and where its calls run.

Commits are ``synchronous=NORMAL`` (no fsync); ``Database.durable`` is the barrier:
one commit under ``synchronous=FULL``, shared by every caller waiting at the time and
free when nothing was committed since the last. ``RunnerConfig.durable`` is awaited
before a walk segment's result is returned and before a daemon reply. Small writes
commit on the loop; bulk ones and barriers in the worker thread. The statements the
writer connection runs are recorded through a proxy, so each test sees exactly what
SQLite was told.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from cutter.stores.sqlite.database import Database, open_database

pytestmark = pytest.mark.anyio


class Recording:
    """The writer connection, every statement it runs recorded (first word or pragma)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        self.statements.append(" ".join(sql.split()))
        return self.conn.execute(sql, args)

    def rollback(self) -> None:
        self.statements.append("ROLLBACK")
        self.conn.rollback()

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def close(self) -> None:
        self.conn.close()

    def syncs(self) -> list[str]:
        """The ``synchronous`` setting of each COMMIT, in order."""
        setting, found = "NORMAL", []
        for statement in self.statements:
            if statement.startswith("PRAGMA synchronous = "):
                setting = statement.rsplit(" ", 1)[1]
            elif statement == "COMMIT":
                found.append(setting)
        return found


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "cutter.sqlite3") as opened:
        opened._writer = Recording(opened._writer)  # type: ignore[assignment]
        yield opened


def recording(db: Database) -> Recording:
    writer = db._writer
    assert isinstance(writer, Recording)
    return writer


def put(key: str, value: bytes) -> Any:
    def write(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO kb_docs (kb_id, doc) VALUES (?, ?)"
            " ON CONFLICT (kb_id) DO UPDATE SET doc = excluded.doc",
            (key, value),
        )

    return write


def stored(db: Database, key: str) -> bytes | None:
    value = db.value("SELECT doc FROM kb_docs WHERE kb_id = ?", (key,))
    return None if value is None else bytes(value)


async def test_a_write_commits_without_a_sync_and_the_barrier_syncs_once(db: Database) -> None:
    await db.write(put("a", b"1"))
    await db.write(put("b", b"2"))
    assert recording(db).syncs() == ["NORMAL", "NORMAL"]
    await db.durable()
    assert recording(db).syncs() == ["NORMAL", "NORMAL", "FULL"]
    assert recording(db).statements[-1] == "PRAGMA synchronous = NORMAL"  # and back


async def test_a_barrier_with_nothing_new_to_sync_commits_nothing(db: Database) -> None:
    await db.durable()  # nothing committed yet by this process
    await db.write(put("a", b"1"))
    await db.durable()
    before = list(recording(db).statements)
    await db.durable()
    assert recording(db).statements == before


async def test_barriers_waiting_together_share_one_sync(db: Database) -> None:
    await db.write(put("a", b"1"))
    entered = anyio.Event()
    release = anyio.Event()

    def held(conn: sqlite3.Connection) -> None:  # keeps a batch in the worker thread
        anyio.from_thread.run_sync(entered.set)
        anyio.from_thread.run(release.wait)
        conn.execute("INSERT INTO kb_docs (kb_id, doc) VALUES ('held', x'00')")

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: db.write(held, bulk=True))
        await entered.wait()
        for key in "bcd":  # written while the batch is in flight: the next batch
            tg.start_soon(db.write, put(key, b"2"))
        for _ in range(5):
            tg.start_soon(db.durable)
        await wait_pending(db, 8)
        release.set()
    syncs = recording(db).syncs()
    assert syncs.count("FULL") == 1, syncs
    assert db.batches == 3  # 'a' on the loop, 'held' alone, then the eight together
    for key in ("a", "b", "c", "d", "held"):
        assert stored(db, key) is not None


async def wait_pending(db: Database, n: int) -> None:
    """Until ``n`` writes queue behind the batch in flight (no clock involved)."""
    while len(db._pending) < n:
        await anyio.lowlevel.checkpoint()


async def test_small_writes_commit_on_the_loop_and_bulk_ones_in_a_thread(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", "?"))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    for i in range(5):
        await db.write(put(f"k{i}", b"small"))
    assert hops == []
    await db.write(put("big", b"x" * 1000), bulk=True)
    await db.durable()
    assert hops == ["_in_thread", "_in_thread"]


async def test_a_write_that_raises_undoes_itself_and_not_its_batch_mates(db: Database) -> None:
    entered, release = anyio.Event(), anyio.Event()

    def held(conn: sqlite3.Connection) -> None:
        anyio.from_thread.run_sync(entered.set)
        anyio.from_thread.run(release.wait)

    def refuses(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO kb_docs (kb_id, doc) VALUES ('refused', x'00')")
        raise LookupError("refused by the write itself")

    failures: list[BaseException] = []

    async def refused() -> None:
        try:
            await db.write(refuses)
        except LookupError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: db.write(held, bulk=True))
        await entered.wait()
        tg.start_soon(db.write, put("before", b"1"))
        tg.start_soon(refused)
        tg.start_soon(db.write, put("after", b"2"))
        await wait_pending(db, 3)
        release.set()
    assert [str(f) for f in failures] == ["refused by the write itself"]
    assert stored(db, "refused") is None
    assert stored(db, "before") == b"1"
    assert stored(db, "after") == b"2"
    assert "ROLLBACK TO job" in recording(db).statements


async def test_a_read_does_not_wait_for_a_batch_in_flight(db: Database) -> None:
    await db.write(put("a", b"old"))
    entered, release = anyio.Event(), anyio.Event()

    def held(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE kb_docs SET doc = x'6e6577' WHERE kb_id = 'a'")
        anyio.from_thread.run_sync(entered.set)
        anyio.from_thread.run(release.wait)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: db.write(held, bulk=True))
        await entered.wait()
        assert stored(db, "a") == b"old"  # the last commit, while the write is open
        release.set()
    assert stored(db, "a") == b"new"


def test_every_commit_keeps_the_wal_and_leaves_checkpoints_to_the_thread(
    tmp_path: Path,
) -> None:
    from cutter.stores.sqlite.database import open_now

    db = open_now(tmp_path / "cutter.sqlite3")
    try:
        writer = db._writer
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # the loop never waits
        assert writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        db.close()


async def test_small_writes_of_one_turn_of_the_loop_commit_together(db: Database) -> None:
    """Tasks the loop runs in one turn write into one loop transaction: one commit,
    and a write that refuses itself is undone alone."""

    def refuses(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO kb_docs (kb_id, doc) VALUES ('refused', x'00')")
        raise LookupError("refused by the write itself")

    refused: list[BaseException] = []

    async def refusing() -> None:
        try:
            await db.write(refuses)
        except LookupError as exc:
            refused.append(exc)

    before = db.batches
    async with anyio.create_task_group() as tg:
        for key in ("a", "b", "c"):
            tg.start_soon(db.write, put(key, key.encode()))
        tg.start_soon(refusing)
        tg.start_soon(db.write, put("d", b"d"))
    assert db.batches == before + 1
    assert recording(db).syncs() == ["NORMAL"]
    assert len(refused) == 1
    assert stored(db, "refused") is None
    assert [stored(db, key) for key in "abcd"] == [b"a", b"b", b"c", b"d"]


async def test_a_bulk_write_waits_for_the_loop_transaction_then_runs(db: Database) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(db.write, put("small", b"1"))
        tg.start_soon(lambda: db.write(put("bulk", b"2"), bulk=True))
        tg.start_soon(db.write, put("also-small", b"3"))
    assert [stored(db, k) for k in ("small", "bulk", "also-small")] == [b"1", b"2", b"3"]
    statements = recording(db).statements
    assert statements.count("BEGIN IMMEDIATE") == db.batches
    assert statements.count("COMMIT") == db.batches
