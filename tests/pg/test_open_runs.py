"""One open run per document, as the run store keeps it (``RunStore.create``): the same
contract on the in-memory, embedded SQLite and PostgreSQL run stores, then what each
database adds — the indexes name exactly the terminal states, a run whose record
cannot be read still holds its document, the writer role cannot drop the index.

A run holds its document from ``create`` until its sidecar is saved in a terminal
state; HALTED and ROLLBACK_PENDING hold it. A second ``create`` is ``DocumentBusy``
naming the holder and records nothing, whichever handle (process) makes it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import anyio
import asyncpg
import msgspec
import pytest

from cutter.core.errors import DocumentBusy, UnknownRun
from cutter.core.ports import RunStore
from cutter.core.sidecar import Sidecar
from cutter.core.state_dir import StateDir
from cutter.core.states import TERMINAL, RunState
from cutter.stores.memory.records import InMemoryRunStore
from cutter.stores.pg import queries as q
from cutter.stores.pg.connect import create_pool
from cutter.stores.pg.records import PgRunStore
from cutter.stores.sqlite import records as sqlite_records
from cutter.stores.sqlite.database import open_now
from cutter.stores.sqlite.records import SqliteRunStore
from tests._harness import hand_edit, paused_sidecar
from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.anyio

WRITER = "cutter_writer"
OPEN_STATES = sorted(set(RunState) - TERMINAL)
DOC = "doc-1"


def run(
    run_id: str, state: RunState = RunState.CREATED, doc_id: str = DOC, revision: int = 0
) -> Sidecar:
    """``revision``: a save follows the stored revision (``cutter.core.run_revision``)."""
    return msgspec.structs.replace(
        paused_sidecar(run_id), state=state, doc_id=doc_id, revision=revision
    )


@dataclass
class Stores:
    kind: str
    store: RunStore
    other: Callable[[], RunStore]  # another handle on the same records (another process)


@pytest.fixture(params=["memory", "sqlite", pytest.param("pg", marks=pytest.mark.subprocess)])
def kind(request: pytest.FixtureRequest) -> tuple[str, PgDatabase | None]:
    """The store's kind; its database for ``pg`` (resolved here, outside the loop)."""
    if request.param == "pg":
        return "pg", request.getfixturevalue("pg_db")
    return request.param, None


@pytest.fixture
async def stores(kind: tuple[str, PgDatabase | None], tmp_path: Path) -> AsyncIterator[Stores]:
    name, db = kind
    if name == "memory":
        memory = InMemoryRunStore()
        yield Stores("memory", memory, lambda: memory)
    elif name == "sqlite":
        opened = [open_now(StateDir(tmp_path).database)]

        def other() -> RunStore:  # another open database on the same file
            opened.append(open_now(StateDir(tmp_path).database))
            return SqliteRunStore(opened[-1])

        try:
            yield Stores("sqlite", SqliteRunStore(opened[0]), other)
        finally:
            for database in opened:
                database.close()
    else:
        assert db is not None
        first = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=4)
        second = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=4)
        try:
            yield Stores("pg", PgRunStore(first), lambda: PgRunStore(second))
        finally:
            await first.close()
            await second.close()


# == the contract, on every run store ===================================================


async def test_a_second_open_run_of_a_document_is_refused_naming_the_holder(
    stores: Stores,
) -> None:
    await stores.store.create(run("run-a"))
    for store in (stores.store, stores.other()):
        with pytest.raises(DocumentBusy) as busy:
            await store.create(run("run-b"))
        assert busy.value.code == "STOP_DOCUMENT_BUSY"
        assert busy.value.doc_id == DOC
        assert "run-a" in busy.value.message
        with pytest.raises(UnknownRun):  # nothing of run-b was recorded
            await store.load("run-b")
    assert await stores.store.run_ids() == ["run-a"]
    await stores.store.create(run("run-c", doc_id="doc-2"))  # another document is free
    assert await stores.store.run_ids() == ["run-a", "run-c"]


@pytest.mark.parametrize("state", OPEN_STATES)
async def test_every_open_state_holds_the_document(stores: Stores, state: RunState) -> None:
    await stores.store.create(run("run-a"))
    await stores.store.save(run("run-a", state, revision=1))
    with pytest.raises(DocumentBusy, match="run-a"):
        await stores.other().create(run("run-b"))


@pytest.mark.parametrize("state", sorted(TERMINAL))
async def test_a_terminal_save_frees_the_document_for_the_next_run(
    stores: Stores, state: RunState
) -> None:
    await stores.store.create(run("run-a"))
    await stores.store.save(run("run-a", RunState.RUNNING, revision=1))
    await stores.store.save(run("run-a", state, revision=2))
    await stores.other().create(run("run-b"))
    assert (await stores.store.load("run-b")).state is RunState.CREATED
    with pytest.raises(DocumentBusy, match="run-b"):  # and run-b holds it now
        await stores.store.create(run("run-c"))


async def test_of_many_concurrent_creates_of_one_document_one_wins(stores: Stores) -> None:
    won: list[str] = []
    refused: list[str] = []

    async def start(store: RunStore, run_id: str) -> None:
        try:
            await store.create(run(run_id))
        except DocumentBusy:
            refused.append(run_id)
        else:
            won.append(run_id)

    handles = [stores.store, stores.other()]
    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(start, handles[n % 2], f"run-{n}")
    assert len(won) == 1, (won, refused)
    assert len(refused) == 7
    assert await stores.store.run_ids() == won


# == the databases: the index ============================================================


def terminal_states_in(text: str) -> set[str]:
    (listed,) = re.findall(r"state NOT IN \(([^)]*)\)", text)
    return {s.strip().strip("'") for s in listed.split(",")}


def test_the_sqlite_index_and_holder_query_name_exactly_the_terminal_states() -> None:
    sql = (
        resources.files("cutter.stores.sqlite")
        .joinpath("migrations/0001_initial.sql")
        .read_text(encoding="utf-8")
    )
    holder = inspect.getsource(sqlite_records._busy)
    for text in (sql, holder):
        assert terminal_states_in(text) == {s.value for s in TERMINAL}


async def test_a_run_whose_record_cannot_be_read_still_holds_its_document(
    tmp_path: Path,
) -> None:
    """The index is over the run's document column, not its record: a damaged
    sidecar neither frees the document nor hides who holds it."""
    database = open_now(StateDir(tmp_path).database)
    try:
        await SqliteRunStore(database).create(run("run-a"))
        sql = "UPDATE runs SET sidecar = ? WHERE run_id = ?"
        assert hand_edit(database.path, sql, b"{not json", "run-a") == 1
        with pytest.raises(DocumentBusy, match="run-a"):
            await SqliteRunStore(database).create(run("run-b"))
        assert await SqliteRunStore(database).run_ids() == ["run-a"]
    finally:
        database.close()


# == PostgreSQL ============================================================================


def test_the_index_and_the_holder_query_name_exactly_the_terminal_states() -> None:
    sql = (
        resources.files("cutter.stores.pg")
        .joinpath("migrations/0002_one_open_run_per_document.sql")
        .read_text(encoding="utf-8")
    )
    for text in (sql, q.OPEN_RUN_OF):
        assert terminal_states_in(text) == {s.value for s in TERMINAL}


@pytest.mark.subprocess
async def test_the_writer_role_cannot_drop_the_index(pg_db: PgDatabase) -> None:
    conn = await asyncpg.connect(pg_db.writer_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"DROP INDEX {q.ONE_OPEN_RUN_INDEX}")
    finally:
        await conn.close()
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0, max_size=2)
    try:
        await PgRunStore(pool).create(run("run-a"))
        with pytest.raises(DocumentBusy, match="run-a"):
            await PgRunStore(pool).create(run("run-b"))
    finally:
        await pool.close()
