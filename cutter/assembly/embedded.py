"""Build a ``RunnerConfig`` on the embedded default: one SQLite database per state directory.

    from cutter import Mode, Runner, embedded_config

    async with embedded_config(Path(".cutter")) as config:
        await config.target.sources.publish("doc-1", data)   # the document to cut
        async with Runner(config) as runner:
            sc = await runner.cut("doc-1", Mode.DRY_RUN, started_by="ann")

The database is ``<state_dir>/cutter.sqlite3``, the daemon's (``cutter daemon
--state-dir DIR``); any SQLite tool can open it (``sqlite3 DIR/cutter.sqlite3
'.tables'``). SQLite's locks make two processes on one database correct; the daemon
still owns its state directory alone (``cutter.stores.owner``), because it walks the
runs it finds there. Anything else (PostgreSQL, another discoverer, a policy) is a
field of ``RunnerConfig`` to set with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio

from cutter.core.approvals import GatePolicy
from cutter.core.errors import InputError, StateDirUnusable
from cutter.core.ports import Discoverer, Target
from cutter.core.state_dir import StateDir
from cutter.discovery import TextDiscoverer
from cutter.stores.memory.target import StaticGrantProbe
from cutter.stores.sqlite.database import Database, open_database
from cutter.stores.sqlite.records import SqliteKillSwitch, SqliteKnowledgeBase, SqliteRunStore
from cutter.stores.sqlite.target import SqliteIUStore, SqliteLedger, SqliteSources
from cutter.walk.runner import RunnerConfig


def check_layout(state_dir: Path) -> None:
    """Refuse a state directory the file stores of an earlier cutter wrote."""
    layout = StateDir(Path(state_dir))
    if layout.database.exists():
        return
    old = [path.name for path in layout.old_layout if path.exists()]
    if old:
        raise StateDirUnusable(
            str(state_dir),
            f"it holds the file stores of an earlier cutter ({', '.join(old)}), which this "
            "one does not read (no release used them): move it aside and start afresh "
            "there, adding the documents again (cutter add-document)",
        )


def config_on(
    db: Database, *, policy: GatePolicy | None = None, discoverer: Discoverer | None = None
) -> RunnerConfig:
    """Every port of a ``RunnerConfig`` on the open database ``db``."""
    return RunnerConfig(
        target=Target(sources=SqliteSources(db), ius=SqliteIUStore(db), ledger=SqliteLedger(db)),
        kb=SqliteKnowledgeBase(db),
        run_store=SqliteRunStore(db),
        discoverer=discoverer or TextDiscoverer(),
        grants=StaticGrantProbe(),
        kill_switch=SqliteKillSwitch(db),
        policy=policy or GatePolicy(),
        durable=db.durable,
    )


@asynccontextmanager
async def embedded_config(
    state_dir: Path,
    *,
    policy: GatePolicy | None = None,
    discoverer: Discoverer | None = None,
) -> AsyncIterator[RunnerConfig]:
    """A ``RunnerConfig`` whose sources, IUs, ledger, KB, runs and kill switch are the
    database under ``state_dir`` (made as needed), with the text discoverer, a grant
    probe that grants everything the embedded target needs, and ``policy`` (by default
    one approver per gate, none the run's starter, approvals good for 24 hours); its
    hooks directory is ``state_dir/hooks``. The database closes on exit."""
    state_dir = Path(state_dir)
    await anyio.to_thread.run_sync(lambda: state_dir.mkdir(parents=True, exist_ok=True))
    check_layout(state_dir)
    layout = StateDir(state_dir)
    async with open_database(layout.database) as db:
        yield replace(config_on(db, policy=policy, discoverer=discoverer), hooks_dir=layout.hooks)
        await db.durable()


@asynccontextmanager
async def open_state_dir(state_dir: Path, *, create: bool = False) -> AsyncIterator[Database]:
    """The database of ``state_dir`` for a short command (``add-document``,
    ``verify-ledger``, ``doctor``), closed on exit; it may run beside a daemon that
    owns the directory (SQLite's locks; a write waits for the daemon's batch).
    With ``create`` the directory and the database are made as needed; without it
    a missing directory or database is ``InputError`` (nothing is made). What it
    wrote is durable (``Database.durable``) before the block's exit returns. An
    old-layout directory is ``StateDirUnusable`` (``check_layout``)."""
    from cutter.stores.owner import make_state_dir

    state_dir = Path(state_dir)
    path = StateDir(state_dir).database
    if create:
        await anyio.to_thread.run_sync(make_state_dir, state_dir)  # typed, one line
    elif not await anyio.Path(state_dir).is_dir():
        raise InputError(f"no state directory {state_dir}")
    check_layout(state_dir)
    if not create and not await anyio.Path(path).is_file():
        raise InputError(f"no database {path}: nothing was stored under {state_dir} yet")
    async with open_database(path, create=create) as db:
        yield db
        await db.durable()  # what the command reports done survives a power loss
