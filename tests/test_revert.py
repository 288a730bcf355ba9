"""``cutter revert RUN`` and ``cutter restore DOC --backup ID`` on the embedded SQLite
stores (docs/revert.md): a restore run walks both gates like a cut, puts the rows
back, is ledgered as a revert envelope and anchored, and is refused (typed, nothing
recorded) when the document changed since the run it reverts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cutter.assembly.embedded import embedded_config
from cutter.cli.doctor import examine_stores
from cutter.cli.ledger import verify_stores
from cutter.core.errors import (
    BackupUnknown,
    InvalidIdentifier,
    NotRevertible,
    RevertRefused,
    SelfApprovalRefused,
    UnknownRun,
)
from cutter.core.ledger import CutEnvelope, RevertEnvelope
from cutter.core.mode import Mode
from cutter.core.records import IUState
from cutter.core.route import Gate, Pin
from cutter.core.states import RunState
from cutter.walk.runner import Runner
from tests._harness import OPERATOR, stored_rows
from tests._restore import DOC, SAMPLE, World, edition, live


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    live()
    async with embedded_config(tmp_path / "state") as config, Runner(config) as runner:
        yield World(runner, config)


def _db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cutter.sqlite3"


@pytest.mark.anyio
async def test_a_reverted_first_cut_leaves_no_rows_and_the_ledger_verifies(
    world: World, tmp_path: Path
) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    assert [r.state for r in await world.rows()] == [IUState.ACTIVE] * len(await world.rows())
    sv_id = str(cut.pins[Pin.SOURCE_VERSION_ID])
    assert await world.config.target.sources.cut_by(sv_id) == cut.pins[Pin.CHANGE_SET_ID]

    revert = await world.revert(cut.run_id)

    assert await world.rows() == []
    # The version counts as not cut again: it may be cut anew.
    assert await world.config.target.sources.cut_by(sv_id) is None
    assert revert.restore is not None
    assert revert.restore.reverts == cut.run_id
    envelopes = [e.envelope for e in await world.config.target.ledger.entries()]
    assert [type(e) for e in envelopes] == [CutEnvelope, RevertEnvelope]
    undo = envelopes[1]
    assert isinstance(undo, RevertEnvelope)
    assert (undo.reverts, undo.backup_id, undo.pre_restore_backup_id, undo.iu_count) == (
        cut.run_id,
        cut.pins[Pin.BACKUP_ID],
        revert.pins[Pin.BACKUP_ID],
        0,
    )
    report = await verify_stores(tmp_path / "state", None)
    assert report.ok, report
    assert sorted(f.kind for f in report.findings) == ["cut", "revert"]
    doctor = await examine_stores(tmp_path / "state", None)  # every record reads back
    assert doctor.ok, doctor


@pytest.mark.anyio
async def test_a_reverted_recut_makes_the_earlier_cut_active_again(world: World) -> None:
    await world.publish(SAMPLE)
    first = await world.cut()
    before = await world.rows()
    await world.publish(edition(2))
    second = await world.cut()
    assert await world.rows() != before

    await world.revert(second.run_id)

    assert await world.rows() == before
    active = {r.change_set_id for r in await world.rows() if r.state is IUState.ACTIVE}
    assert active == {first.pins[Pin.CHANGE_SET_ID]}
    # The new version is not cut any more; the first still is, by the first cut.
    sources = world.config.target.sources
    assert await sources.cut_by(str(second.pins[Pin.SOURCE_VERSION_ID])) is None
    first_sv = str(first.pins[Pin.SOURCE_VERSION_ID])
    assert await sources.cut_by(first_sv) == first.pins[Pin.CHANGE_SET_ID]


@pytest.mark.anyio
async def test_a_revert_of_a_revert_restores_the_cut(world: World) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    after_cut = await world.rows()
    revert = await world.revert(cut.run_id)
    assert await world.rows() == []

    again = await world.revert(revert.run_id)

    assert await world.rows() == after_cut
    sv_id = str(cut.pins[Pin.SOURCE_VERSION_ID])
    assert await world.config.target.sources.cut_by(sv_id) == cut.pins[Pin.CHANGE_SET_ID]
    assert again.restore is not None
    assert again.restore.reverts == revert.run_id
    assert again.pins[Pin.ROWS_AFTER] == cut.pins[Pin.ROWS_AFTER]


@pytest.mark.anyio
async def test_the_reverts_own_gates_refuse_its_starter(world: World) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    sc = await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
    assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
    with pytest.raises(SelfApprovalRefused):
        await world.approve(sc, Gate.SG_1, by=OPERATOR)
    sc = await world.approve(sc, Gate.SG_1)
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    with pytest.raises(SelfApprovalRefused):
        await world.approve(sc, Gate.SG_2, by=OPERATOR)
    # Refused twice, nothing was restored: the cut's rows stand.
    assert {r.change_set_id for r in await world.rows()} == {cut.pins[Pin.CHANGE_SET_ID]}


@pytest.mark.anyio
async def test_a_revert_after_a_later_cut_is_refused_naming_it(
    world: World, tmp_path: Path
) -> None:
    await world.publish(SAMPLE)
    first = await world.cut()
    await world.publish(edition(2))
    second = await world.cut()
    before = stored_rows(_db(tmp_path))
    # The version changed since the first cut: refused, naming the restore that goes back.
    with pytest.raises(RevertRefused) as refused:
        await world.runner.revert(first.run_id, Mode.LIVE, started_by=OPERATOR)
    assert f"run {second.run_id} changed its rows" in refused.value.message
    assert f"cutter restore {DOC} --backup {first.pins[Pin.BACKUP_ID]}" in refused.value.message
    assert stored_rows(_db(tmp_path)) == before  # no run, no doc, nothing


@pytest.mark.anyio
async def test_a_revert_after_a_later_cut_of_the_same_version_names_it(
    world: World, tmp_path: Path
) -> None:
    """Reverted, the version may be cut again: the first cut may then not be reverted."""
    await world.publish(SAMPLE)
    first = await world.cut()
    await world.revert(first.run_id)
    again = await world.cut()
    before = stored_rows(_db(tmp_path))
    with pytest.raises(RevertRefused) as refused:
        await world.runner.revert(first.run_id, Mode.LIVE, started_by=OPERATOR)
    assert f"run {again.run_id} changed them" in refused.value.message
    assert stored_rows(_db(tmp_path)) == before


@pytest.mark.anyio
async def test_a_revert_after_a_later_run_on_the_same_version_names_that_run(
    world: World, tmp_path: Path
) -> None:
    """The same version, other rows: a restore ran after the cut."""
    await world.publish(SAMPLE)
    cut = await world.cut()
    restore = await world.through(
        await world.runner.restore(DOC, str(cut.pins[Pin.BACKUP_ID]), Mode.LIVE, started_by="dan")
    )
    assert restore.state is RunState.CLOSEOUT_REPORTED
    before = stored_rows(_db(tmp_path))
    with pytest.raises(RevertRefused) as refused:
        await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
    assert f"run {restore.run_id} changed them" in refused.value.message
    assert stored_rows(_db(tmp_path)) == before


@pytest.mark.anyio
async def test_a_revert_after_a_new_version_is_refused(world: World, tmp_path: Path) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    new_sv = await world.publish(edition(3))
    before = stored_rows(_db(tmp_path))
    with pytest.raises(RevertRefused) as refused:
        await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
    assert new_sv in refused.value.message
    assert stored_rows(_db(tmp_path)) == before


@pytest.mark.anyio
async def test_only_a_closed_out_live_run_is_revertible(world: World, tmp_path: Path) -> None:
    await world.publish(SAMPLE)
    dry = await world.cut(Mode.DRY_RUN)
    open_run = await world.runner.cut(DOC, Mode.LIVE, started_by=OPERATOR)
    before = stored_rows(_db(tmp_path))
    for run_id in (dry.run_id, open_run.run_id):
        with pytest.raises(NotRevertible):
            await world.runner.revert(run_id, Mode.LIVE, started_by=OPERATOR)
    with pytest.raises(UnknownRun):
        await world.runner.revert("run-0000000000000000", Mode.LIVE, started_by=OPERATOR)
    with pytest.raises(InvalidIdentifier):
        await world.runner.revert("../../etc/passwd", Mode.LIVE, started_by=OPERATOR)
    assert stored_rows(_db(tmp_path)) == before


@pytest.mark.anyio
async def test_a_dry_run_revert_changes_nothing(world: World) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    rows = await world.rows()
    entries = await world.config.target.ledger.entries()
    backups = await world.config.target.ius.backups(DOC)

    dry = await world.revert(cut.run_id, Mode.DRY_RUN)

    assert dry.pins[Pin.LIFECYCLE_ENACTED_COUNT] == 0  # what the live revert would leave
    assert await world.rows() == rows
    assert await world.config.target.ledger.entries() == entries
    assert await world.config.target.ius.backups(DOC) == backups
    sv_id = str(cut.pins[Pin.SOURCE_VERSION_ID])
    assert await world.config.target.sources.cut_by(sv_id) == cut.pins[Pin.CHANGE_SET_ID]
    # and the cut may still be reverted for real
    await world.revert(cut.run_id)
    assert await world.rows() == []


@pytest.mark.anyio
async def test_restore_from_an_older_backup(world: World) -> None:
    await world.publish(SAMPLE)
    await world.cut()
    first_rows = await world.rows()
    await world.publish(edition(2))
    second = await world.cut()
    await world.publish(edition(3))
    await world.cut()
    # Back to what the second cut found: the first cut's rows.
    sc = await world.runner.restore(DOC, str(second.pins[Pin.BACKUP_ID]), Mode.LIVE)
    sc = await world.through(sc)
    assert sc.state is RunState.CLOSEOUT_REPORTED
    assert await world.rows() == first_rows
    listed = await world.runner.backups(DOC)
    assert [b.backup.backup_id for b in listed][:2] == [
        listed[0].backup.backup_id,
        str(second.pins[Pin.BACKUP_ID]),
    ]
    assert second.run_id in listed[1].saved_by


@pytest.mark.anyio
async def test_a_bad_or_foreign_backup_is_refused_and_nothing_changes(
    world: World, tmp_path: Path
) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    await world.config.target.sources.publish("other", edition(9))  # type: ignore[attr-defined]
    other = await world.through(await world.runner.cut("other", Mode.LIVE, started_by=OPERATOR))
    foreign = str(other.pins[Pin.BACKUP_ID])
    before = stored_rows(_db(tmp_path))
    for backup_id, error in (
        (foreign, BackupUnknown),
        ("bk-" + "0" * 32, BackupUnknown),
        ("bk-../../x", InvalidIdentifier),
        ("'; DROP TABLE ius; --", InvalidIdentifier),
    ):
        with pytest.raises(error):
            await world.runner.restore(DOC, backup_id, Mode.LIVE, started_by=OPERATOR)
    assert stored_rows(_db(tmp_path)) == before
    del cut
