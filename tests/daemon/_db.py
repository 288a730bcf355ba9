"""The embedded database of a daemon's state directory, read (and damaged) by tests.

The daemon keeps everything in ``<state_dir>/cutter.sqlite3``; a test opens it
beside a running daemon (WAL: it reads the last commit) or after one stopped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

import anyio

from cutter.assembly.embedded import config_on
from cutter.core.state_dir import StateDir
from cutter.stores.sqlite.database import open_database
from cutter.walk.runner import RunnerConfig

T = TypeVar("T")


class Consumed(NamedTuple):
    approval_kb_id: str
    run_id: str


@asynccontextmanager
async def stores(state_dir: Path) -> AsyncIterator[RunnerConfig]:
    """Every store of the state directory's database (which must exist)."""
    async with open_database(StateDir(state_dir).database, create=False) as db:
        yield config_on(db)


def read(state_dir: Path, fn: Callable[[RunnerConfig], Awaitable[T]]) -> T:
    """``fn`` over the stores, from synchronous test code."""

    async def go() -> T:
        async with stores(state_dir) as config:
            return await fn(config)

    return anyio.run(go)


def query(state_dir: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Rows of ``sql`` on a connection of its own (read-only); [] without a database."""
    path = StateDir(state_dir).database
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, args).fetchall()


def execute(state_dir: Path, sql: str, args: tuple[object, ...] = ()) -> None:
    """One committed write behind the daemon's back (a test's damage)."""
    with closing(sqlite3.connect(StateDir(state_dir).database)) as conn, conn:
        conn.execute(sql, args)


def consumed_approvals(state_dir: Path) -> list[Consumed]:
    """The ``consumed_approvals`` table, by approval id."""
    rows = query(
        state_dir, "SELECT approval_kb_id, run_id FROM consumed_approvals ORDER BY approval_kb_id"
    )
    return [Consumed(str(a), str(r)) for a, r in rows]


def flip_byte(state_dir: Path, table: str, column: str, key: str, value: str) -> bytes:
    """Flip the high bit of the middle byte of one row's blob; the blob it was."""
    [(data,)] = query(state_dir, f"SELECT {column} FROM {table} WHERE {key} = ?", (value,))
    assert isinstance(data, bytes)
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x80
    execute(state_dir, f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (bytes(damaged), value))
    return data


@contextmanager
def write_lock(state_dir: Path) -> Iterator[None]:
    """Hold the database's write lock, as another process may (``add-document``):
    the daemon's next durable write waits for it (SQLite's busy timeout) until the
    block ends. Nothing is written."""
    path = StateDir(state_dir).database
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def sidecars_stored(state_dir: Path) -> dict[str, bytes]:
    """Every run's stored sidecar bytes, by run id."""
    rows = query(state_dir, "SELECT run_id, sidecar FROM runs ORDER BY run_id")
    return {str(run_id): bytes(data) for run_id, data in rows}  # type: ignore[arg-type]


def kb_list(state_dir: Path, prefix: str) -> list[str]:
    return read(state_dir, lambda c: c.kb.list(prefix))


def kb_get(state_dir: Path, kb_id: str) -> object:
    return read(state_dir, lambda c: c.kb.get(kb_id))


def contents(state_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: "nothing was written" is equality."""
    tables = query(state_dir, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return {
        str(name): sorted(query(state_dir, f'SELECT * FROM "{name}"'), key=repr)
        for (name,) in tables
    }
