"""The embedded database when the storage fails: a full disk, a read-only state
directory, a damaged file. Each is a typed ``StorageError`` with its code, nothing
is half-applied (the previous state reads back exactly), and once space or the file
is back the same write succeeds.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from functools import partial
from pathlib import Path

import anyio
import msgspec
import pytest

from cutter.core.errors import StorageCorrupt, StorageFull, StorageReadOnly, UnknownRun
from cutter.core.kbdocs import KBDoc
from cutter.core.sidecar import Sidecar
from cutter.core.state_dir import StateDir
from cutter.stores.sqlite import database
from cutter.stores.sqlite.database import open_database, open_now
from cutter.stores.sqlite.records import SqliteKnowledgeBase, SqliteRunStore
from tests._harness import paused_sidecar
from tests._mounts import fill, read_only, tmpfs
from tests.pg._stores import phase_doc
from tests.sqlite.test_group_commit import Held

pytestmark = [pytest.mark.anyio, pytest.mark.may_skip]


def doc(n: int, *, note_size: int = 10) -> KBDoc:
    return phase_doc(f"run-{n}", note=f"{n}:" + "x" * note_size)


def dump(path: Path) -> list[tuple[object, ...]]:
    """Every KB doc as stored, read by a connection of its own."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT kb_id, doc FROM kb_docs ORDER BY kb_id").fetchall()


async def seed(path: Path, count: int, *, note_size: int = 10) -> None:
    async with open_database(path) as db:
        kb = SqliteKnowledgeBase(db)
        for n in range(count):
            await kb.put(f"docs/{n:04}", doc(n, note_size=note_size))


def sidecar(run_id: str) -> Sidecar:
    return msgspec.structs.replace(paused_sidecar(run_id), doc_id=f"doc-of-{run_id}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- a full disk ---------------------------------------------------------------------


async def test_a_full_disk_is_storage_full_nothing_half_applied_and_recovers(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "mnt", size="2m") as mount:
        path = StateDir(mount).database
        async with open_database(path) as db:
            kb = SqliteKnowledgeBase(db)
            for n in range(3):
                await kb.put(f"docs/{n}", doc(n))
            before = dump(path)
            filler = fill(mount)
            big = doc(99, note_size=200_000)  # needs pages the disk no longer has
            with pytest.raises(StorageFull) as caught:
                await kb.put("docs/big", big)
            assert caught.value.code == "E_STORAGE_FULL"
            assert str(path) in caught.value.message
            assert dump(path) == before  # nothing of the refused write
            with pytest.raises(KeyError):
                await kb.get("docs/big")
            filler.unlink()  # space again: the same write now succeeds
            await kb.put("docs/big", big)
            assert await kb.get("docs/big") == big
        assert [r[0] for r in dump(path)] == ["docs/0", "docs/1", "docs/2", "docs/big"]
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_a_full_disk_still_acknowledges_what_was_committed(tmp_path: Path) -> None:
    """The durability barrier every daemon reply waits for commits a frame; with no room
    for it the barrier syncs the files instead: what is committed is acknowledged (a
    status read is answered), only new writes are refused."""
    with tmpfs(tmp_path / "mnt", size="2m") as mount:
        path = StateDir(mount).database
        async with open_database(path) as db:
            kb = SqliteKnowledgeBase(db)
            for n in range(3):
                await kb.put(f"docs/{n}", doc(n))  # committed, not yet synced
            before = dump(path)
            filler = fill(mount)
            await db.durable()  # no room for a barrier frame: no error either
            await db.durable()  # and nothing left to sync
            assert dump(path) == before
            with pytest.raises(StorageFull):
                await kb.put("docs/big", doc(99, note_size=200_000))
            filler.unlink()
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_a_full_disk_fails_a_batch_whole_with_an_error_per_caller(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", size="2m") as mount:
        path = StateDir(mount).database
        async with open_database(path) as db:
            kb = SqliteKnowledgeBase(db)
            await kb.put("docs/0", doc(0))
            before = dump(path)
            outcome: dict[str, BaseException] = {}

            async def put(kb_id: str) -> None:
                try:
                    await kb.put(kb_id, doc(1, note_size=100_000))
                except StorageFull as exc:
                    outcome[kb_id] = exc

            held = Held(write=lambda c: None)
            async with anyio.create_task_group() as tg:
                tg.start_soon(held.run, db)
                await held.started()
                tg.start_soon(put, "docs/a")
                tg.start_soon(put, "docs/b")
                await anyio.wait_all_tasks_blocked()  # both queued for the next batch
                filler = fill(mount)
                held.release()
            # The batch's COMMIT found no space: neither write landed, and each caller
            # has an error of its own (one instance raised in two tasks would carry
            # both tasks' tracebacks).
            assert sorted(outcome) == ["docs/a", "docs/b"]
            assert outcome["docs/a"] is not outcome["docs/b"]
            assert dump(path) == before
            filler.unlink()
            await kb.put("docs/a", doc(1, note_size=100_000))
            assert await kb.list("") == ["docs/0", "docs/a"]


async def test_a_checkpoint_that_finds_no_space_fails_no_caller_raw_nor_hangs_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a batch the worker thread copies the WAL, once ``CHECKPOINT_COMMITS``
    transactions are in it, into the database file, which must grow: on a full disk
    that copy fails. The callers get typed errors (or their committed results), none
    waits for ever."""
    monkeypatch.setattr(database, "CHECKPOINT_COMMITS", 10)
    with tmpfs(tmp_path / "mnt", size="16m") as mount:
        path = StateDir(mount).database
        async with open_database(path) as db:
            kb = SqliteKnowledgeBase(db)
            for n in range(10):  # ~5 MB of new pages in the WAL, none copied yet
                await kb.put(f"docs/{n}", doc(n, note_size=500_000))
            fill(mount)
            outcome: dict[str, BaseException | None] = {}

            async def put(kb_id: str) -> None:
                try:
                    await kb.put(kb_id, doc(1))
                except Exception as exc:  # kept for the assertions below
                    outcome[kb_id] = exc
                else:
                    outcome[kb_id] = None

            held = Held(write=lambda c: None)
            with anyio.fail_after(60):  # a hang guard, not a measurement
                async with anyio.create_task_group() as tg:
                    tg.start_soon(held.run, db)
                    await held.started()
                    tg.start_soon(put, "docs/a")
                    tg.start_soon(put, "docs/b")
                    await anyio.wait_all_tasks_blocked()
                    held.release()
            assert sorted(outcome) == ["docs/a", "docs/b"]
            for error in outcome.values():
                assert error is None or isinstance(error, StorageFull), repr(error)


# -- a read-only state directory -----------------------------------------------------


async def test_a_read_only_state_dir_is_storage_read_only_and_changes_nothing(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = StateDir(state).database
    await seed(path, 3)
    before, files = digest(path), sorted(p.name for p in state.iterdir())
    with read_only(state):
        # Opening needs the WAL's shared-memory file beside the database: refused.
        with pytest.raises(StorageReadOnly) as caught:
            open_now(path)
        assert caught.value.code == "E_STORAGE_READ_ONLY"
        assert str(path) in caught.value.message
        with pytest.raises(StorageReadOnly):
            open_now(state / "other.sqlite3")  # nor is a new database made
    assert (digest(path), sorted(p.name for p in state.iterdir())) == (before, files)
    async with open_database(path) as db:  # writable again: it opens, as it was
        assert len(await SqliteKnowledgeBase(db).list("")) == 3


# -- a damaged file ------------------------------------------------------------------


def page_of(path: Path, table: str) -> tuple[int, int]:
    """The byte offset of ``table``'s root page, and the page size."""
    with closing(sqlite3.connect(path)) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()[0]
    return (root - 1) * size, size


def flip(path: Path, offset: int, count: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        data = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


async def test_a_damaged_table_page_is_named_at_open_and_a_copy_recovers(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    await seed(path, 200)
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(path, copy)
    offset, _ = page_of(path, "kb_docs")
    flip(path, offset, 8)  # the b-tree page header of kb_docs' root
    with pytest.raises(StorageCorrupt) as caught:
        open_now(path)
    assert caught.value.code == "E_STORAGE_CORRUPT"
    message = caught.value.message
    assert str(path) in message
    assert "page" in message.lower()  # quick_check's own words, naming the page
    shutil.copyfile(copy, path)  # restored from the copy: it opens, whole
    async with open_database(path) as db:
        assert len(await SqliteKnowledgeBase(db).list("")) == 200


def test_a_damaged_file_header_is_not_a_database_typed(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    open_now(path).close()
    flip(path, 0, 16)  # "SQLite format 3\0"
    with pytest.raises(StorageCorrupt) as caught:
        open_now(path)
    assert "not a database" in caught.value.message
    assert str(path) in caught.value.message


async def test_damage_found_after_open_is_typed_and_half_applies_nothing(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    await seed(path, 200)
    async with open_database(path) as db:  # quick_check passed: the damage comes after
        kb = SqliteKnowledgeBase(db)
        runs = SqliteRunStore(db)
        offset, _ = page_of(path, "kb_docs")
        flip(path, offset, 8)
        with pytest.raises(StorageCorrupt) as caught:
            await kb.get("docs/0007")  # a read that reaches the damaged page
        assert str(path) in caught.value.message
        # Another connection commits (as a second process would): the writer's page
        # cache, filled by quick_check, is dropped, so its next write reads from disk.
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("UPDATE kill_switch SET reason = 'other' WHERE id = 1")
        run = sidecar("run-x")
        outcome: dict[str, BaseException] = {}

        async def caught(name: str, write: Callable[[], Awaitable[object]]) -> None:
            try:
                await write()
            except StorageCorrupt as exc:
                outcome[name] = exc

        held = Held(write=lambda c: c.execute("UPDATE kill_switch SET reason = 'held'"))
        async with anyio.create_task_group() as tg:  # the next batch: one write hits the damage
            tg.start_soon(held.run, db)
            await held.started()
            tg.start_soon(caught, "save", partial(runs.create, run))
            tg.start_soon(caught, "put", partial(kb.put, "docs/new", doc(1000)))
            await anyio.wait_all_tasks_blocked()
            held.release()
        # SQLite rolls the whole transaction back: every write of the batch is refused,
        # each caller with an error of its own, and none of them is applied.
        assert sorted(outcome) == ["put", "save"]
        assert outcome["put"] is not outcome["save"]  # one traceback each
        with pytest.raises(UnknownRun):
            await runs.load("run-x")
        assert db.value("SELECT reason FROM kill_switch") == "held"  # the batch before
    shutil.copyfile(path, tmp_path / "kept.sqlite3")
    with closing(sqlite3.connect(tmp_path / "kept.sqlite3")) as conn:
        query = "SELECT count(*) FROM kb_docs WHERE kb_id = 'docs/new'"
        assert conn.execute(query).fetchone() == (0,)
