"""A live run that stops after leg A wrote, on PostgreSQL: every scenario of
``tests/_undo.py`` (issue 10, part 2), with the writer role's own stores, and the
rows checked once more as the superuser reads them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from tests._undo import DISCOVERER, DOC_ID, SCENARIOS, World
from tests.pg._walk import admin_fetch, publish_source
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_a_live_run_stopping_after_leg_a_on_postgresql(
    scenario: Callable[[World], Awaitable[None]],
    pg_db: PgDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)

    async def publish(data: bytes) -> str:
        return (await publish_source(pg_db.admin_dsn, DOC_ID, data)).sv_id

    async with pg_config(pg_db.writer_dsn, DISCOVERER, control_dsn=pg_db.control_dsn) as config:
        world = World(config=config, publish=publish, monkeypatch=monkeypatch)
        await scenario(world)
        seen_by_writer = [(r.sv_id, r.ordinal, r.state.value) for r in await world.rows()]
    rows = await admin_fetch(
        pg_db.admin_dsn,
        "SELECT sv_id, ordinal, state FROM ius WHERE doc_id = $1 ORDER BY sv_id, ordinal",
        DOC_ID,
    )
    assert [(r["sv_id"], r["ordinal"], r["state"]) for r in rows] == seen_by_writer
