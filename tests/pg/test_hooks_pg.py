"""Hooks on PostgreSQL (issue 15, item 3): a veto before leg A leaves no backup, IU row or
ledger entry as the superuser reads the tables; a veto before enact rolls leg A back;
each hook run is a ``HookRecord`` the writer's KB holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.core.hook_names import HookEvent
from cutter.core.kbdocs import HookRecord, hook_records_prefix
from cutter.core.mode import Mode
from cutter.core.states import Rollback, RunState
from tests._harness import OPERATOR
from tests._undo import DISCOVERER, DOC_ID, FIRST, World, approve, earlier_cut, to_sg2
from tests.pg._walk import admin_fetch, publish_source
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]


def veto(path: Path) -> Path:
    path.write_text("#!/bin/sh\necho 'frozen' >&2\nexit 1\n")
    path.chmod(0o700)
    return path


async def test_vetoes_on_postgresql(
    pg_db: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    hooks = tmp_path / "hooks"
    hooks.mkdir(mode=0o700)

    async def publish(data: bytes) -> str:
        return (await publish_source(pg_db.admin_dsn, DOC_ID, data)).sv_id

    async def count(table: str) -> int:
        (row,) = await admin_fetch(pg_db.admin_dsn, f"SELECT count(*) AS n FROM {table}")
        return int(row["n"])

    async with pg_config(pg_db.writer_dsn, DISCOVERER, control_dsn=pg_db.control_dsn) as config:
        config = dataclasses.replace(config, hooks_dir=hooks)
        world = World(config=config, publish=publish, monkeypatch=monkeypatch)
        # Before leg A: nothing written.
        leg_a = veto(hooks / "before_leg_a")
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sc = await runner.resume(sc.run_id, await approve(world, sc))
        assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_VETOED")
        assert [await count(t) for t in ("ius", "backups", "ledger")] == [0, 0, 0]
        (kb_id,) = await config.kb.list(hook_records_prefix(sc.run_id, HookEvent.BEFORE_LEG_A))
        record = await config.kb.get(kb_id)
        assert isinstance(record, HookRecord)
        assert (record.hook, record.exit_code, record.stderr) == (str(leg_a), 1, "frozen\n")
        # Before enact: leg A's rows rolled back.
        leg_a.unlink()
        async with world.runner() as runner:
            rows = await earlier_cut(world, runner)
            veto(hooks / "before_lifecycle_enact")
            sc = await to_sg2(world, runner)
            sc = await runner.resume(sc.run_id, await approve(world, sc))
        assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_VETOED")
        assert sc.undo is not None
        assert sc.undo.status is Rollback.DONE
        assert await world.rows() == rows
        assert len(await world.rollbacks(sc.run_id)) == 1
