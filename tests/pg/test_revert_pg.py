"""``cutter revert`` on PostgreSQL (docs/revert.md), with the writer and control
roles' own stores: the rows go back to what they were before the cut, the ledger
verifies with cut and revert envelopes (``cutter verify-ledger``'s check), the
revert's gates refuse its starter, a revert after a later cut is refused naming
it, a revert of the revert restores the cut, and a dry-run revert writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.cli.ledger import verify_stores
from cutter.core.errors import RevertRefused, SelfApprovalRefused
from cutter.core.ledger import CutEnvelope, RevertEnvelope, RollbackEnvelope
from cutter.core.mode import Mode
from cutter.core.route import Gate, Pin
from cutter.core.states import RunState
from cutter.discovery import TextDiscoverer
from cutter.walk.runner import Runner
from tests._harness import OPERATOR
from tests._restore import DOC, SAMPLE, World, edition
from tests.pg._walk import publish_source, table_digest
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]


@dataclass
class PgWorld(World):
    admin_dsn: str = ""

    async def publish(self, data: bytes) -> str:
        """As the ingest would, with the superuser: the writer may not publish."""
        return (await publish_source(self.admin_dsn, DOC, data)).sv_id


async def test_revert_on_postgresql(pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    async with (
        pg_config(pg_db.writer_dsn, TextDiscoverer(), control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        world = PgWorld(runner, config, admin_dsn=pg_db.admin_dsn)
        await world.publish(SAMPLE)
        first = await world.cut()
        first_rows = await world.rows()
        await world.publish(edition(2))
        second = await world.cut()
        second_rows = await world.rows()

        # A dry-run revert writes nothing.
        before = await table_digest(pg_db.admin_dsn)
        dry = await world.revert(second.run_id, Mode.DRY_RUN)
        assert dry.state is RunState.CLOSEOUT_REPORTED
        assert await table_digest(pg_db.admin_dsn) == before

        # The revert's own gates refuse its starter.
        sc = await runner.revert(second.run_id, Mode.LIVE, started_by=OPERATOR)
        with pytest.raises(SelfApprovalRefused):
            await world.approve(sc, Gate.SG_1, by=OPERATOR)
        revert = await world.through(sc)
        assert revert.state is RunState.CLOSEOUT_REPORTED
        assert await world.rows() == first_rows  # the re-cut undone: the first cut active
        sources = config.target.sources
        assert await sources.cut_by(str(second.pins[Pin.SOURCE_VERSION_ID])) is None

        # A revert of the revert restores the second cut.
        again = await world.revert(revert.run_id)
        assert await world.rows() == second_rows
        assert again.pins[Pin.ROWS_AFTER] == second.pins[Pin.ROWS_AFTER]

        # The first cut: a later cut (and its reverts) stand after it.
        with pytest.raises(RevertRefused) as refused:
            await runner.revert(first.run_id, Mode.LIVE, started_by=OPERATOR)
        assert f"run {again.run_id}" in refused.value.message

        kinds = [type(e.envelope) for e in await config.target.ledger.entries()]
        assert kinds == [CutEnvelope, CutEnvelope, RevertEnvelope, RevertEnvelope]
        assert RollbackEnvelope not in kinds

    report = await verify_stores(Path("unused"), pg_db.admin_dsn)  # --dsn: the state dir unused
    assert report.ok, report
    assert sorted(f.kind for f in report.findings) == ["cut", "cut", "revert", "revert"]
