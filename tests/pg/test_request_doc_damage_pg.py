"""A damaged sovereign request doc in ``kb_docs`` is refused, never approved (issue 12
§4, PostgreSQL): the superuser flips one byte of the gate's request doc (seeded
offsets and masks); every approval is refused ``GATE_REQUEST_DAMAGED``, nothing is
consumed and the ``runs`` row is unchanged; with the doc restored the same approval
is taken once."""

from __future__ import annotations

import random

import pytest

from cutter.assembly.postgres import pg_config
from cutter.core.errors import GateRefusal, GateRequestDamaged
from cutter.core.mode import Mode
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.walk.runner import Runner
from tests._harness import OPERATOR
from tests.pg._walk import DOC_ID, N_IUS, admin_fetch, publish_source, write_approval
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

FLIP = "UPDATE kb_docs SET doc = set_byte(doc, $2, get_byte(doc, $2) # $3) WHERE kb_id = $1"


async def admin_flip(dsn: str, kb_id: str, at: int, mask: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.execute(FLIP, kb_id, at, mask) == "UPDATE 1"
    finally:
        await conn.close()


async def test_a_flipped_request_doc_row_is_refused_and_nothing_is_consumed(
    pg_db: PgDatabase,
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.DRY_RUN, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION, sc.stop
        gate = sc.pending_gate
        assert gate is not None
        approval = await write_approval(config.kb, sc)
        [row] = await admin_fetch(
            pg_db.admin_dsn,
            "SELECT length(doc) AS n FROM kb_docs WHERE kb_id = $1",
            gate.request_kb_id,
        )
        rng = random.Random(1206)
        for _ in range(12):
            at, mask = rng.randrange(row["n"]), rng.randrange(1, 256)
            await admin_flip(pg_db.admin_dsn, gate.request_kb_id, at, mask)
            with pytest.raises(GateRefusal) as refused:
                await runner.resume(sc.run_id, approval)
            assert refused.value.code == GateRequestDamaged.code, refused.value.message
            assert await config.run_store.consumed_for(sc.run_id) == []
            assert await config.run_store.load(sc.run_id) == sc
            await admin_flip(pg_db.admin_dsn, gate.request_kb_id, at, mask)  # undone
        after = await runner.resume(sc.run_id, approval)
        assert after.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, after.stop
        assert await config.run_store.consumed_for(sc.run_id) == [approval]
