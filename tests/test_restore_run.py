"""A restore run's guarantees beyond the happy path (docs/revert.md), on the embedded
SQLite stores: what its review shows, drift at each gate, a backup that does not
tile its source stopped at structural_verify and rolled back, an abort at SG_2
rolled back, and the commit point (a stop after lifecycle_enact leaves the restore
standing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import msgspec
import pytest

import cutter.walk.phases
from cutter.assembly.embedded import embedded_config
from cutter.core.errors import StopVerifyFailed
from cutter.core.ledger import RollbackEnvelope
from cutter.core.mode import Mode
from cutter.core.records import Backup
from cutter.core.route import Gate, Phase, Pin
from cutter.core.states import RunState
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.walk.phases.context import PhaseContext, PhaseOutput
from cutter.walk.runner import Runner
from cutter.web.app import review_app
from tests._harness import OPERATOR, hand_edit
from tests._restore import DOC, SAMPLE, World, edition, live


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    live()
    async with embedded_config(tmp_path / "state") as config, Runner(config) as runner:
        yield World(runner, config)


def _db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cutter.sqlite3"


@pytest.mark.anyio
async def test_the_review_shows_the_rows_the_restore_brings_back(world: World) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    sc = await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
    _, review = await world.runner.review(sc.run_id)
    assert review.units == ()  # a first cut reverted: nothing active after
    assert len(review.diff.removed) == len(await world.rows())
    assert f"revert of run {cut.run_id}" in review.notes[0]
    sc = await world.approve(sc, Gate.SG_1)
    _, review = await world.runner.review(sc.run_id)
    assert review.change_set is not None
    assert review.change_set.activate == ()
    assert len(review.change_set.retire) == len(await world.rows())


@pytest.mark.anyio
async def test_the_review_page_names_a_revert_a_revert_and_a_restore_a_restore(
    world: World,
) -> None:
    """The reviewer on the page is told what kind of write they approve, not "the cut"."""
    await world.publish(SAMPLE)
    cut = await world.cut()
    async with anyio.create_task_group() as jobs:
        daemon = Daemon(world.runner, world.config.kill_switch, EventBus(), jobs, owner="root")
        transport = httpx.ASGITransport(app=review_app(daemon))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            sc = await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
            page = await http.get(f"/runs/{sc.run_id}")
            assert page.status_code == 200, page.text
            assert "<h2>What the revert changes</h2>" in page.text
            await world.runner.abort(sc.run_id, reason="next: a restore", by=OPERATOR)
            backup = str(cut.pins[Pin.BACKUP_ID])
            sc = await world.runner.restore(DOC, backup, Mode.LIVE, started_by=OPERATOR)
            page = await http.get(f"/runs/{sc.run_id}")
            assert "<h2>What the restore changes</h2>" in page.text
            await world.runner.abort(sc.run_id, reason="done", by=OPERATOR)
            await world.publish(edition(2))
            sc = await world.runner.cut(DOC, Mode.DRY_RUN, started_by=OPERATOR)
            page = await http.get(f"/runs/{sc.run_id}")
            assert "<h2>What the cut changes</h2>" in page.text
        jobs.cancel_scope.cancel()


@pytest.mark.anyio
async def test_the_review_of_a_reverted_recut_shows_the_earlier_versions_units(
    world: World,
) -> None:
    await world.publish(SAMPLE)
    first = await world.cut()
    first_rows = await world.rows()
    await world.publish(edition(2))
    second = await world.cut()
    sc = await world.runner.revert(second.run_id, Mode.LIVE, started_by=OPERATOR)
    _, review = await world.runner.review(sc.run_id)
    assert review.source_version_id == first.pins[Pin.SOURCE_VERSION_ID]
    assert [u.region_sha for u in review.units] == [r.region_sha for r in first_rows]
    assert review.source_size == len(SAMPLE)
    # The request still names the version the document is at.
    assert sc.pins[Pin.SOURCE_VERSION_ID] == second.pins[Pin.SOURCE_VERSION_ID]


@pytest.mark.anyio
async def test_rows_changed_before_sg1_is_drift(world: World, tmp_path: Path) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    sc = await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
    assert hand_edit(_db(tmp_path), "UPDATE ius SET state = 'superseded' WHERE ordinal = 0") == 1
    sc = await world.approve(sc, Gate.SG_1)
    assert sc.state is RunState.FAILED
    assert sc.stop_code == "STOP_DRIFT"
    assert [d.pin for d in sc.drift] == [Pin.BACKUP_ID.value]


@pytest.mark.anyio
async def test_rows_changed_before_sg2_is_drift_and_rolled_back(
    world: World, tmp_path: Path
) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    rows = await world.rows()
    sc = await world.approve(
        await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR), Gate.SG_1
    )
    assert hand_edit(_db(tmp_path), "UPDATE ius SET state = 'superseded' WHERE ordinal = 0") == 1
    sc = await world.approve(sc, Gate.SG_2)
    assert sc.state is RunState.FAILED
    assert [d.pin for d in sc.drift] == [Pin.VERIFY_RESULT_ID.value]
    assert await world.rows() == rows  # the pre-restore snapshot put back
    last = (await world.config.target.ledger.entries())[-1].envelope
    assert isinstance(last, RollbackEnvelope)
    assert last.run_id == sc.run_id


@pytest.mark.anyio
async def test_a_backup_that_does_not_tile_its_source_stops_at_structural_verify(
    world: World,
) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    rows = await world.rows()
    # A stored backup of the document whose rows skip the first unit: well formed,
    # hashing to its id, but its active rows do not cover the version's bytes.
    holed = Backup(doc_id=DOC, rows=tuple(rows[1:]))
    await world.config.target.ius.save_backup(holed)
    sc = await world.runner.restore(DOC, holed.backup_id, Mode.LIVE, started_by=OPERATOR)
    sc = await world.approve(sc, Gate.SG_1)
    assert sc.state is RunState.FAILED
    assert sc.stop_code == "STOP_VERIFY_FAILED"
    assert sc.stop is not None
    assert "structural verify" in sc.stop.message
    assert await world.rows() == rows
    sv_id = str(cut.pins[Pin.SOURCE_VERSION_ID])
    assert await world.config.target.sources.cut_by(sv_id) == cut.pins[Pin.CHANGE_SET_ID]


@pytest.mark.anyio
async def test_an_abort_at_sg2_leaves_the_rows_as_they_were(world: World) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    rows = await world.rows()
    sc = await world.approve(
        await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR), Gate.SG_1
    )
    sc = await world.runner.abort(sc.run_id, reason="not now", by=OPERATOR)
    assert sc.state is RunState.ABORTED
    assert await world.rows() == rows
    # The cut is still what the document holds: it may still be reverted.
    await world.revert(cut.run_id)
    assert await world.rows() == []


@pytest.mark.anyio
async def test_a_stop_after_lifecycle_enact_leaves_the_restore_standing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()

    async def fails(ctx: PhaseContext) -> PhaseOutput:
        raise StopVerifyFailed("closeout could not write its report")

    monkeypatch.setitem(cutter.walk.phases.RESTORE_BODIES, Phase.CLOSEOUT, fails)
    sc = await world.through(await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR))
    assert sc.state is RunState.FAILED
    assert sc.stop is not None
    assert "stands" in sc.stop.message
    assert await world.rows() == []  # restored, and not undone
    assert not any(
        isinstance(e.envelope, RollbackEnvelope) for e in await world.config.target.ledger.entries()
    )
    assert msgspec.structs.asdict(sc)["undo"] is None


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("hook", "gate"), [("before_leg_a", Gate.SG_1), ("before_lifecycle_enact", Gate.SG_2)]
)
@pytest.mark.anyio
async def test_a_before_hook_vetoes_a_revert_before_it_writes(
    world: World, tmp_path: Path, hook: str, gate: Gate
) -> None:
    """A revert runs the cut's before_* hooks: a veto stops it, the rows the cut's."""
    await world.publish(SAMPLE)
    cut = await world.cut()
    rows = await world.rows()
    hooks = tmp_path / "state" / "hooks"
    hooks.mkdir(mode=0o700)
    veto = hooks / hook
    veto.write_text("#!/bin/sh\necho 'no reverts on Fridays' >&2\nexit 1\n")
    veto.chmod(0o700)
    sc = await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
    if gate is Gate.SG_2:
        sc = await world.approve(sc, Gate.SG_1)
    sc = await world.approve(sc, gate)
    assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_VETOED")
    assert sc.stop is not None
    assert "no reverts on Fridays" in sc.stop.message
    assert await world.rows() == rows
    sv_id = str(cut.pins[Pin.SOURCE_VERSION_ID])
    assert await world.config.target.sources.cut_by(sv_id) == cut.pins[Pin.CHANGE_SET_ID]
