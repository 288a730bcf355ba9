"""Assemble a ``RunnerConfig`` whose every port is backed by PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from cutter.core.approvals import GatePolicy
from cutter.core.ports import Discoverer, Target
from cutter.runtime.logs import get_logger
from cutter.stores.pg.connect import create_pool, redacted
from cutter.stores.pg.locks import PgDocumentLocks
from cutter.stores.pg.logins import check_logins
from cutter.stores.pg.records import PgKillSwitch, PgKnowledgeBase, PgRunStore
from cutter.stores.pg.roles import CONTROL
from cutter.stores.pg.target import PgGrantProbe, PgIUStore, PgLedger, PgSourceRepository
from cutter.walk.phases.context import Clock
from cutter.walk.runner import RunnerConfig, utc_now

POOL_CLOSE_TIMEOUT = 10.0
CONTROL_CONNECTIONS = 4  # consumption, policy, the daemon's approvals, the kill switch


@asynccontextmanager
async def pg_config(
    dsn: str,
    discoverer: Discoverer,
    *,
    role: str | None = "cutter_writer",
    control_dsn: str | None = None,
    control_role: str | None = CONTROL,
    check_roles: bool = False,
    policy: GatePolicy | None = None,
    clock: Clock = utc_now,
    max_connections: int = 10,
) -> AsyncIterator[RunnerConfig]:
    """Stores on the database at ``dsn``, every session acting as ``role`` (the writer
    identity the grant probe checks); the writes the gate trusts (consumption, the
    policy, the daemon's approvals, the kill switch) on ``control_dsn`` (``dsn`` when
    None) acting as ``control_role``. A role None uses the DSN's own user.

    ``check_roles`` (the daemon) first checks that each login is a member of its role
    (``LoginLacksRole`` otherwise) and logs ``control_shares_login`` when one login
    holds both. Without it the pools connect lazily: a command refused up front
    (``Mode.LIVE`` while execution is off, a hostile id) never opens a connection."""
    if check_roles:
        logins = await check_logins(dsn, control_dsn, writer=role or "cutter_writer")
        if logins.shared:
            get_logger(component="pg").warning(
                "control_shares_login",
                login=logins.writer_login,
                dsn=redacted(dsn),
                why="one login holds cutter_writer and cutter_control: whoever holds its "
                "password can pass the gate; give the daemon a separate --control-dsn",
            )
    pool = await create_pool(dsn, role=role, min_size=0, max_size=max_connections)
    control = None
    try:
        control = await create_pool(
            control_dsn or dsn, role=control_role, min_size=0, max_size=CONTROL_CONNECTIONS
        )
        yield RunnerConfig(
            target=Target(
                sources=PgSourceRepository(pool), ius=PgIUStore(pool), ledger=PgLedger(pool)
            ),
            kb=PgKnowledgeBase(pool, control),
            run_store=PgRunStore(pool, control),
            discoverer=discoverer,
            grants=PgGrantProbe(pool),
            kill_switch=PgKillSwitch(pool, control),
            locks=PgDocumentLocks(dsn),
            policy=policy or GatePolicy(),
            clock=clock,
        )
    finally:
        for opened in (p for p in (control, pool) if p is not None):
            with anyio.move_on_after(POOL_CLOSE_TIMEOUT, shield=True) as closing:
                await opened.close()
            if closing.cancelled_caught:
                opened.terminate()
