"""Pages of the run list (``cutter.core.run_pages``, ``RunStore.page``) on the in-memory,
embedded SQLite and PostgreSQL run stores, with 5,000 stored runs: the pages of a filter
cover every run it matches exactly once, in run id order; a run that changes state
or is created while someone pages is neither lost nor listed twice; a cursor this
daemon did not hand out is refused, typed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cutter.core.ports import RunStore
from cutter.core.run_pages import (
    MAX_LIMIT,
    BadCursor,
    BadLimit,
    RunFilter,
    encode_cursor,
    page_of,
)
from cutter.core.sidecar import Sidecar
from cutter.core.state_dir import StateDir
from cutter.core.states import RunState
from cutter.stores.memory.records import InMemoryRunStore
from cutter.stores.pg.connect import create_pool
from cutter.stores.pg.records import PgRunStore
from cutter.stores.sqlite.database import open_database
from cutter.stores.sqlite.records import SqliteRunStore
from tests._many_runs import many_runs, no_fsync, nth_run, run_id_of, store_runs
from tests._revision import next_revision
from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.anyio

WRITER = "cutter_writer"
MANY = 5000


@pytest.fixture(params=["memory", "sqlite", pytest.param("pg", marks=pytest.mark.subprocess)])
def kind(request: pytest.FixtureRequest) -> tuple[str, PgDatabase | None]:
    if request.param == "pg":
        return "pg", request.getfixturevalue("pg_db")
    return request.param, None


@pytest.fixture
async def store(kind: tuple[str, PgDatabase | None], tmp_path: Path) -> AsyncIterator[RunStore]:
    name, db = kind
    if name == "memory":
        yield InMemoryRunStore()
    elif name == "sqlite":
        async with open_database(StateDir(tmp_path).database) as database:
            yield SqliteRunStore(database)
    else:
        assert db is not None
        pool = await create_pool(db.writer_dsn, role=WRITER, min_size=0, max_size=8)
        try:
            yield PgRunStore(pool)
        finally:
            await pool.close()


async def stored(store: RunStore, runs: list[Sidecar]) -> None:
    with no_fsync():
        await store_runs(store, runs)


async def every_page(store: RunStore, where: RunFilter, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        got = await page_of(store, where, limit, cursor)
        runs, cursor = got.runs, got.next_cursor
        pages.append([r.run_id for r in runs])
        assert len(runs) <= limit
        assert all(where.matches(r.state, r.doc_id) for r in runs)
        if cursor is None:
            return pages


FILTERS = {
    "every run": RunFilter(),
    "one state": RunFilter(state=RunState.ABORTED),
    "one document": RunFilter(doc_id="doc-3"),
    "state and document": RunFilter(state=RunState.FAILED, doc_id="doc-3"),
    "waiting at a gate": RunFilter(state=RunState.AWAITING_CUT_AUTHORIZATION),
}


async def test_the_pages_of_a_filter_list_every_run_it_matches_once(store: RunStore) -> None:
    runs = many_runs(MANY)
    await stored(store, runs)
    for name, where in FILTERS.items():
        expected = sorted(r.run_id for r in runs if where.matches(r.state, r.doc_id))
        assert expected, name
        pages = await every_page(store, where, 100)
        listed = [run_id for page in pages for run_id in page]
        assert listed == expected, name  # each once, in order, none left out
        assert all(len(page) == 100 for page in pages[:-1]), name
    # The largest page: 1,000 runs in one reply.
    got = await page_of(store, RunFilter(), MAX_LIMIT, None)
    first, cursor = got.runs, got.next_cursor
    assert [r.run_id for r in first] == sorted(r.run_id for r in runs)[:MAX_LIMIT]
    assert cursor is not None


async def test_runs_that_change_or_appear_while_paging_are_listed_once(
    store: RunStore,
) -> None:
    runs = many_runs(300)
    await stored(store, runs)
    ids = sorted(r.run_id for r in runs)
    by_id = {r.run_id: r for r in runs}
    got = await page_of(store, RunFilter(), 100, None)
    first, cursor = got.runs, got.next_cursor
    assert [r.run_id for r in first] == ids[:100]
    # While the operator reads page 1: a listed run and a run not yet listed end
    # (their state changes), and two new runs appear, one each side of the cursor.
    for run_id in (ids[10], ids[200]):
        changed = next_revision(by_id[run_id], state=RunState.ABORTED)
        await store.save(changed)
    newcomers = [nth_run(n) for n in range(300, 400)]
    before = next(r for r in newcomers if r.run_id < ids[99])
    after = next(r for r in newcomers if r.run_id > ids[99])
    await store.create(before)
    await store.create(after)
    rest: list[str] = []
    while cursor is not None:
        got = await page_of(store, RunFilter(), 100, cursor)
        page, cursor = got.runs, got.next_cursor
        rest += [r.run_id for r in page]
    listed = [r.run_id for r in first] + rest
    assert len(listed) == len(set(listed))  # nothing twice
    assert set(ids) <= set(listed)  # nothing that was there all along is lost
    assert after.run_id in listed
    assert before.run_id not in listed


async def test_a_cursor_not_handed_out_for_this_filter_is_refused(store: RunStore) -> None:
    await stored(store, many_runs(30))
    state = RunFilter(state=RunState.FAILED)
    got = await page_of(store, state, 2, None)
    _, good = got.runs, got.next_cursor
    assert good is not None
    prefix, body, check = good.split(".")
    flipped = body[:5] + ("A" if body[5] != "A" else "B") + body[6:]
    forged_body = encode_cursor(run_id_of(3), state).split(".")[1]
    refused = {
        "garbage": "not-a-cursor",
        "empty": "",
        "garbled body": f"{prefix}.{flipped}.{check}",
        "forged position": f"{prefix}.{forged_body}.{check}",
        "cut short": good[:-3],
        "another version": "c9" + good[2:],
        "too long": good + "x" * 2000,
        "bad base64": f"{prefix}.@@@@.{check}",
        "non-ASCII check": f"{prefix}.{body}.{check[:-1]}é",
        "non-ASCII body": f"{prefix}.{body}é.{check}",
        "no run id": encode_cursor("../etc", state),
    }
    for name, cursor in refused.items():
        with pytest.raises(BadCursor) as caught:
            await page_of(store, state, 2, cursor)
        assert caught.value.code == "E_BAD_CURSOR", name
    with pytest.raises(BadCursor, match="other --state/--doc"):
        await page_of(store, RunFilter(state=RunState.ABORTED), 2, good)
    with pytest.raises(BadCursor, match="other --state/--doc"):
        await page_of(store, RunFilter(), 2, good)
    for limit in (0, -1, MAX_LIMIT + 1):
        with pytest.raises(BadLimit):
            await page_of(store, state, limit, None)
    # The cursor handed out still works after all that.
    got = await page_of(store, state, 2, good)
    page, _ = got.runs, got.next_cursor
    assert page
