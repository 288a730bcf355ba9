"""``cutter doctor --dsn`` (issue 12 §4, PostgreSQL): a healthy database passes; a
flipped byte in one run's ``runs`` row and one in another run's gate request doc in
``kb_docs`` are each named, and the healthy run is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutter.assembly.postgres import pg_config
from cutter.cli.doctor import examine_stores
from cutter.core.mode import Mode
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.walk.runner import Runner
from tests._harness import OPERATOR
from tests.pg._walk import DOC_ID, N_IUS, admin_execute, publish_source
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]


async def test_doctor_names_a_damaged_run_row_and_request_doc(pg_db: PgDatabase) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    others = ("doc-b", "doc-c")
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    for doc_id in others:
        await publish_source(pg_db.admin_dsn, doc_id, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        runs = [
            await runner.cut(doc_id, Mode.DRY_RUN, started_by=OPERATOR)
            for doc_id in (DOC_ID, *others)
        ]
    assert all(r.state is RunState.AWAITING_CUT_AUTHORIZATION for r in runs)
    healthy = await examine_stores(Path("."), pg_db.writer_dsn)
    assert healthy.ok, healthy.damage
    assert (healthy.runs, healthy.requests) == (3, 3)
    bad_run, bad_request = runs[0], runs[1]
    request_id = bad_request.gates[0].request_kb_id
    await admin_execute(
        pg_db.admin_dsn,
        "UPDATE runs SET sidecar = set_byte(sidecar, 7, get_byte(sidecar, 7) # 128) "
        f"WHERE run_id = '{bad_run.run_id}'",
        "UPDATE kb_docs SET doc = set_byte(doc, 40, get_byte(doc, 40) # 3) "
        f"WHERE kb_id = '{request_id}'",
    )
    report = await examine_stores(Path("."), pg_db.writer_dsn)
    assert not report.ok
    named = {(d.kind, d.where) for d in report.damage}
    assert named == {("run", bad_run.run_id), ("request", request_id)}, report.damage
