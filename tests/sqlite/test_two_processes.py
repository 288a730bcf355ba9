"""Two processes on one embedded database, and its migrations.

The decision (docs/storage.md, Failures): SQLite's locks make two processes on one
database correct; the daemon's owner lock only keeps a second daemon away. So: two
processes consuming one approval, exactly one wins; two appending to the ledger, one
valid chain with every entry; a writer kept waiting past the busy timeout by another
process gets a typed error; two processes opening a new database apply each
migration once; a database newer than this cutter is refused.
"""

from __future__ import annotations

import sqlite3
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from cutter.core.errors import StateDirUnusable, StorageBusy
from cutter.core.ledger import verify_stored
from cutter.core.state_dir import StateDir
from cutter.stores.sqlite import database
from cutter.stores.sqlite.database import open_database, open_now
from cutter.stores.sqlite.migrate import migrations
from cutter.stores.sqlite.records import SqliteKnowledgeBase, SqliteRunStore
from cutter.stores.sqlite.target import SqliteLedger
from tests.pg._stores import phase_doc
from tests.sqlite._procs import Child, child

pytestmark = pytest.mark.anyio

APPROVAL = "runs/run-a/gates/SG_1/approvals/alice"


def start_together(path: Path, *commands: tuple[str, ...]) -> list[Child]:
    """Children that each say ``ready`` and then act when told, all at once."""
    procs = [Child(command[0], str(path), *command[1:]) for command in commands]
    for proc in procs:
        proc.expect("ready")
    for proc in procs:
        proc.send()
    return procs


@pytest.mark.subprocess
async def test_two_processes_consuming_one_approval_exactly_one_wins(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    open_now(path).close()
    with ExitStack() as stack:
        procs = start_together(path, ("consume", "run-a", APPROVAL), ("consume", "run-b", APPROVAL))
        for proc in procs:
            stack.callback(proc.close)
        said = {run: proc.finish() for run, proc in zip(("run-a", "run-b"), procs, strict=True)}
    assert sorted(said.values()) == ["lost APPROVAL_CONSUMED_ALREADY", "won"]
    winner = next(run for run, line in said.items() if line == "won")
    async with open_database(path) as db:
        runs = SqliteRunStore(db)
        assert await runs.consumed_by(APPROVAL) == winner
        loser = "run-b" if winner == "run-a" else "run-a"
        assert (await runs.load(winner)).revision == 1
        assert (await runs.load(loser)).revision == 0  # the loser saved nothing


@pytest.mark.subprocess
async def test_two_processes_appending_to_the_ledger_keep_one_chain(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    open_now(path).close()
    with ExitStack() as stack:
        procs = start_together(path, ("append", "a", "25"), ("append", "b", "25"))
        for proc in procs:
            stack.callback(proc.close)
        assert [proc.finish() for proc in procs] == ["done", "done"]
    async with open_database(path) as db:
        ledger = SqliteLedger(db)
        stored = await ledger.stored()
        assert [e.seq for e in stored] == list(range(50))
        verify_stored(stored)  # raises ChainBroken on a fork or a gap
        runs = {e.envelope.run_id for e in await ledger.entries()}
        assert runs == {f"run-{tag}-{n}" for tag in "ab" for n in range(25)}


@pytest.mark.subprocess
async def test_a_writer_kept_past_the_busy_timeout_gets_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = StateDir(tmp_path).database
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 50)  # read when a connection opens
    async with open_database(path) as db:
        kb = SqliteKnowledgeBase(db)
        await kb.put("docs/0", phase_doc("run-0"))
        with child("hold", str(path)) as holder:
            holder.expect("locked")  # the other process holds the write lock
            with pytest.raises(StorageBusy) as caught:
                await kb.put("docs/1", phase_doc("run-1"))
            assert caught.value.code == "E_STORAGE_BUSY"
            assert str(path) in caught.value.message
            holder.send()
            assert holder.finish() == ""
        assert await kb.list("") == ["docs/0"]
        await kb.put("docs/1", phase_doc("run-1"))  # the lock released: the same write works
        assert await kb.list("") == ["docs/0", "docs/1"]


@pytest.mark.subprocess
def test_processes_opening_a_new_database_at_once_apply_each_migration_once(
    tmp_path: Path,
) -> None:
    path = StateDir(tmp_path).database
    with ExitStack() as stack:
        procs = start_together(path, *[("open",)] * 4)
        for proc in procs:
            stack.callback(proc.close)
        assert [proc.finish() for proc in procs] == ["opened"] * 4
    with closing(sqlite3.connect(path)) as conn:
        versions = conn.execute("SELECT version, name FROM schema_version").fetchall()
        assert conn.execute("SELECT count(*) FROM kill_switch").fetchone() == (1,)
    assert versions == [(m.version, m.name) for m in migrations()]


def test_a_database_newer_than_this_cutter_is_refused_clearly(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    open_now(path).close()
    newer = len(migrations()) + 1
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (?, 'future')", (newer,))
    with pytest.raises(StateDirUnusable) as caught:
        open_now(path)
    assert caught.value.code == "E_STATE_DIR_UNUSABLE"
    assert f"schema version {newer}" in caught.value.message
    assert "newer than this cutter" in caught.value.message
