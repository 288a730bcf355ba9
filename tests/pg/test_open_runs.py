"""One open run per document, as the run store keeps it (``RunStore.create``): the same
contract on the in-memory, file and PostgreSQL run stores, then what only one store
has — the file store's claims left by a crash, the PostgreSQL index the writer role
cannot drop.

A run holds its document from ``create`` until its sidecar is saved in a terminal
state; HALTED and ROLLBACK_PENDING hold it. A second ``create`` is ``DocumentBusy``
naming the holder and records nothing, whichever handle (process) makes it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import anyio
import asyncpg
import msgspec
import pytest

from cutter.errors import DocumentBusy, UnknownRun
from cutter.pg import queries as q
from cutter.pg.connect import create_pool
from cutter.pg.records import PgRunStore
from cutter.ports import RunStore
from cutter.sidecar import Sidecar
from cutter.states import TERMINAL, RunState
from cutter.stores.files import FileRunStore
from cutter.stores.memory_records import InMemoryRunStore
from tests._harness import paused_sidecar
from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.anyio

WRITER = "cutter_writer"
OPEN_STATES = sorted(set(RunState) - TERMINAL)
DOC = "doc-1"


def run(run_id: str, state: RunState = RunState.CREATED, doc_id: str = DOC) -> Sidecar:
    return msgspec.structs.replace(paused_sidecar(run_id), state=state, doc_id=doc_id)


@dataclass
class Stores:
    kind: str
    store: RunStore
    other: Callable[[], RunStore]  # another handle on the same records (another process)


@pytest.fixture(params=["memory", "file", "pg"])
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
    elif name == "file":
        yield Stores("file", FileRunStore(tmp_path), lambda: FileRunStore(tmp_path))
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
    await stores.store.save(run("run-a", state))
    with pytest.raises(DocumentBusy, match="run-a"):
        await stores.other().create(run("run-b"))


@pytest.mark.parametrize("state", sorted(TERMINAL))
async def test_a_terminal_save_frees_the_document_for_the_next_run(
    stores: Stores, state: RunState
) -> None:
    await stores.store.create(run("run-a"))
    await stores.store.save(run("run-a", RunState.RUNNING))
    await stores.store.save(run("run-a", state))
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


# == the file store: claims a crash left ================================================


def claim_file(root: Path, doc_id: str = DOC) -> Path:
    return root / "open" / f"{doc_id}.json"


async def test_a_claim_whose_run_was_never_saved_holds_nothing(tmp_path: Path) -> None:
    """A crash between the claim and the run's first save leaves a claim and no run."""
    await FileRunStore(tmp_path).create(run("run-a"))
    (tmp_path / "runs" / "run-a.json").unlink()  # as if the save never happened
    assert claim_file(tmp_path).exists()
    reopened = FileRunStore(tmp_path)
    await reopened.create(run("run-b"))
    assert await reopened.run_ids() == ["run-b"]
    with pytest.raises(DocumentBusy, match="run-b"):
        await FileRunStore(tmp_path).create(run("run-c"))


async def test_a_claim_left_after_a_terminal_save_holds_nothing(tmp_path: Path) -> None:
    """A crash between the terminal save and the claim's removal leaves both."""
    store = FileRunStore(tmp_path)
    await store.create(run("run-a"))
    held = claim_file(tmp_path).read_bytes()
    await store.save(run("run-a", RunState.ABORTED))
    assert not claim_file(tmp_path).exists()  # released on the terminal save
    claim_file(tmp_path).write_bytes(held)  # put back: the removal never happened
    await FileRunStore(tmp_path).create(run("run-b"))
    assert b"run-b" in claim_file(tmp_path).read_bytes()


@pytest.mark.parametrize("content", [b"", b'{"doc_id": "doc-1", "run_'])
async def test_a_claim_cut_short_while_written_holds_nothing(
    tmp_path: Path, content: bytes
) -> None:
    claim_file(tmp_path).parent.mkdir(parents=True)
    claim_file(tmp_path).write_bytes(content)
    await FileRunStore(tmp_path).create(run("run-b"))
    assert (await FileRunStore(tmp_path).load("run-b")).state is RunState.CREATED


async def test_a_claim_whose_run_cannot_be_read_still_holds(tmp_path: Path) -> None:
    await FileRunStore(tmp_path).create(run("run-a"))
    (tmp_path / "runs" / "run-a.json").write_bytes(b"{not json")
    with pytest.raises(DocumentBusy, match="run-a"):
        await FileRunStore(tmp_path).create(run("run-b"))


async def test_open_runs_saved_before_claims_existed_hold_their_document(
    tmp_path: Path,
) -> None:
    """A state directory written before this rule: open runs and no claims."""
    await FileRunStore(tmp_path).save(run("run-a", RunState.AWAITING_CUT_AUTHORIZATION))
    await FileRunStore(tmp_path).save(run("run-z", RunState.CLOSEOUT_REPORTED, "doc-2"))
    assert not (tmp_path / "open").exists()
    fresh = FileRunStore(tmp_path)
    with pytest.raises(DocumentBusy, match="run-a"):
        await fresh.create(run("run-b"))
    await fresh.create(run("run-c", doc_id="doc-2"))  # a closed run holds nothing


# == PostgreSQL: the index ================================================================


def test_the_index_and_the_holder_query_name_exactly_the_terminal_states() -> None:
    sql = (
        resources.files("cutter.pg")
        .joinpath("migrations/0002_one_open_run_per_document.sql")
        .read_text(encoding="utf-8")
    )
    for text in (sql, q.OPEN_RUN_OF):
        (listed,) = re.findall(r"state NOT IN \(([^)]*)\)", text)
        assert {s.strip().strip("'") for s in listed.split(",")} == {s.value for s in TERMINAL}


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
