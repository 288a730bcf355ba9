"""Assemble a ``RunnerConfig`` whose every port is backed by PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from cutter.approvals import GatePolicy
from cutter.pg.connect import create_pool
from cutter.pg.locks import PgDocumentLocks
from cutter.pg.records import PgKillSwitch, PgKnowledgeBase, PgRunStore
from cutter.pg.target import PgGrantProbe, PgIUStore, PgLedger, PgSourceRepository
from cutter.phases.context import Clock
from cutter.ports import Discoverer, Target
from cutter.runner import RunnerConfig, utc_now

POOL_CLOSE_TIMEOUT = 10.0


@asynccontextmanager
async def pg_config(
    dsn: str,
    discoverer: Discoverer,
    *,
    role: str | None = "cutter_writer",
    policy: GatePolicy | None = None,
    clock: Clock = utc_now,
    max_connections: int = 10,
) -> AsyncIterator[RunnerConfig]:
    """Stores on the database at ``dsn``, every session acting as ``role`` (the writer
    identity the grant probe checks). ``role=None`` uses the DSN's own user.

    The pool connects lazily: a command refused up front (``Mode.LIVE`` while
    execution is off, a hostile id) never opens a connection."""
    pool = await create_pool(dsn, role=role, min_size=0, max_size=max_connections)
    try:
        yield RunnerConfig(
            target=Target(
                sources=PgSourceRepository(pool), ius=PgIUStore(pool), ledger=PgLedger(pool)
            ),
            kb=PgKnowledgeBase(pool),
            run_store=PgRunStore(pool),
            discoverer=discoverer,
            grants=PgGrantProbe(pool),
            kill_switch=PgKillSwitch(pool),
            locks=PgDocumentLocks(dsn),
            policy=policy or GatePolicy(),
            clock=clock,
        )
    finally:
        with anyio.move_on_after(POOL_CLOSE_TIMEOUT, shield=True) as closing:
            await pool.close()
        if closing.cancelled_caught:
            pool.terminate()
