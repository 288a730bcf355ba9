"""What a restore run is started with, checked against the stores before anything is
recorded (docs/revert.md): a bad backup id, an unknown backup or another document's
is ``BackupUnknown``; a revert the guard refuses (``cutter.core.revert``) is
``NotRevertible``/``RevertRefused``. Each changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from cutter.core.errors import BackupUnknown, CorruptRecord, UnknownDocument
from cutter.core.ids import check_doc_id
from cutter.core.mode import Mode
from cutter.core.ports import Target
from cutter.core.restoring import RestoreOrder, SavedBackup, check_backup_id, snapshot_id
from cutter.core.revert import later_run, revert_order
from cutter.core.route import Phase, Pin
from cutter.core.sidecar import Sidecar


async def restore_order(target: Target, doc_id: str, backup_id: str) -> RestoreOrder:
    """A plain restore of ``doc_id`` from ``backup_id``, once the backup is the
    document's and hashes to its id."""
    doc_id = check_doc_id(doc_id)
    backup_id = check_backup_id(backup_id)
    try:
        backup = await target.ius.load_backup(backup_id)
    except CorruptRecord as exc:
        # the stores' "no such backup" is a CorruptRecord too: say only the reason
        raise BackupUnknown(f"backup {backup_id} cannot be restored: {exc.reason}") from exc
    if backup.backup_id != backup_id:
        raise BackupUnknown(f"backup {backup_id} does not hash to its id")
    if backup.doc_id != doc_id:
        raise BackupUnknown(f"backup {backup_id} is a backup of {backup.doc_id}, not of {doc_id}")
    return RestoreOrder(backup_id=backup_id)


async def revert_of(target: Target, run: Sidecar) -> RestoreOrder:
    """The restore that reverts ``run``, or the guard's refusal."""
    try:
        current: str | None = (await target.sources.current(run.doc_id)).sv_id
    except UnknownDocument:
        current = None
    rows_now = snapshot_id(run.doc_id, await target.ius.rows(run.doc_id))
    later = None
    if rows_now != run.pins.get(Pin.ROWS_AFTER):
        later = later_run(await target.ledger.entries(), run)
    order = revert_order(run, current_sv=current, rows_now=rows_now, later=later)
    await restore_order(target, run.doc_id, order.backup_id)  # still stored, still whole
    return order


async def saved_backups(target: Target, runs: Sequence[Sidecar], doc_id: str) -> list[SavedBackup]:
    """The document's stored backups, oldest first, each with the live runs whose leg
    A stored it (their ``backup_id`` pin)."""
    doc_id = check_doc_id(doc_id)
    by_backup: dict[str, list[str]] = {}
    for run in runs:
        backup_id = run.pins.get(Pin.BACKUP_ID)
        if (
            run.doc_id == doc_id
            and run.mode is Mode.LIVE
            and backup_id is not None
            and Phase.CUT_LEG_A in run.phases_passed
        ):
            by_backup.setdefault(str(backup_id), []).append(run.run_id)
    return [
        SavedBackup(backup=info, saved_by=tuple(sorted(by_backup.get(info.backup_id, ()))))
        for info in await target.ius.backups(doc_id)
    ]
