"""The gate checked where the write happens, on PostgreSQL (issue 11, part 4): the
superuser edits a paused run's ``runs`` row, or drops an approval into ``kb_docs`` and
records its use; the LIVE run then writes no IU row (SG_1) and enacts none (SG_2)."""

from __future__ import annotations

import msgspec
import pytest

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.core.codec import encode_sidecar
from cutter.core.errors import StopCode
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.sidecar import ApprovalUse, Sidecar, replace_gate
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.walk.runner import Runner, utc_now
from tests._harness import OPERATOR, REVIEWER
from tests.pg._walk import DOC_ID, N_IUS, admin_execute, admin_fetch, publish_source, write_approval
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

ZERO = """UPDATE runs SET sidecar = convert_to(replace(convert_from(sidecar, 'UTF8'),
    '"required_approvals":1', '"required_approvals":0'), 'UTF8') WHERE run_id = '{run_id}'"""


@pytest.fixture(autouse=True)
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)


async def iu_states(admin_dsn: str) -> list[str]:
    rows = await admin_fetch(admin_dsn, "SELECT state FROM ius WHERE doc_id = $1", DOC_ID)
    return sorted(r["state"] for r in rows)


async def put_sidecar(admin_dsn: str, sidecar: Sidecar) -> None:
    data = encode_sidecar(sidecar).hex()
    await admin_execute(
        admin_dsn,
        f"UPDATE runs SET sidecar = '\\x{data}'::bytea WHERE run_id = '{sidecar.run_id}'",
    )


def assert_stopped_at_the_gate(sc: Sidecar) -> None:
    assert sc.state is RunState.FAILED, sc.stop
    assert sc.stop is not None
    assert sc.stop.code is StopCode.GATE_NOT_PASSED, sc.stop


async def test_required_approvals_edited_in_the_runs_row_writes_no_row(pg_db: PgDatabase) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION, sc.stop
        await admin_execute(pg_db.admin_dsn, ZERO.format(run_id=sc.run_id))
        sc = await runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert await iu_states(pg_db.admin_dsn) == []


async def test_required_approvals_edited_at_sg2_enacts_nothing(pg_db: PgDatabase) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        sc = await runner.resume(sc.run_id, await write_approval(config.kb, sc))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
        assert await iu_states(pg_db.admin_dsn) == ["staged"] * N_IUS
        gate = sc.pending_gate
        assert gate is not None
        edited = msgspec.structs.replace(
            sc, gates=replace_gate(sc, msgspec.structs.replace(gate, required_approvals=0))
        )
        await put_sidecar(pg_db.admin_dsn, edited)
        sc = await runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert "active" not in await iu_states(pg_db.admin_dsn)


async def test_an_approval_dropped_into_kb_docs_and_recorded_writes_no_row(
    pg_db: PgDatabase,
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        kb_id = await write_approval(config.kb, sc)
        gate = sc.pending_gate
        assert gate is not None
        use = ApprovalUse(
            approval_kb_id=kb_id,
            approver=REVIEWER,
            decision=Decision.APPROVE,
            peer=None,
            consumed_at=utc_now(),
        )
        forged = msgspec.structs.replace(
            sc, gates=replace_gate(sc, msgspec.structs.replace(gate, uses=(use,)))
        )
        await put_sidecar(pg_db.admin_dsn, forged)
        sc = await runner.resume(sc.run_id)
    assert_stopped_at_the_gate(sc)
    assert "was not consumed by this run" in sc.stop.message  # type: ignore[union-attr]
    assert await iu_states(pg_db.admin_dsn) == []
