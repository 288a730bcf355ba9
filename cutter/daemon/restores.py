"""The daemon's ``revert``, ``restore`` and ``backups`` commands (docs/revert.md).

A restore run is started as ``start`` starts a cut: the mode checked, the declared
``started_by`` the caller's own (or a relay's), the policy's starters for the
document, and what would be restored checked before anything is recorded
(``BackupUnknown``, ``NotRevertible``, ``RevertRefused``); with ``wait`` off the run
is recorded, holding its document, before ``Accepted``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cutter.core.ids import check_doc_id, check_run_id
from cutter.core.mode import require_mode_allowed
from cutter.core.principals import Caller
from cutter.core.protocol import (
    Accepted,
    BackupList,
    ListBackups,
    Restore,
    Revert,
    RunInfo,
)

if TYPE_CHECKING:
    from cutter.daemon.service import Daemon


async def start_restore(
    daemon: Daemon, command: Revert | Restore, caller: Caller
) -> Accepted | RunInfo:
    """A revert or restore as ``start`` is answered: the starter checked, then the
    guard (``NotRevertible``, ``RevertRefused``, ``BackupUnknown``), before anything
    is recorded."""
    require_mode_allowed(command.mode)
    runner = daemon.runner
    if isinstance(command, Revert):
        doc_id = (await runner.status(check_run_id(command.run_id))).doc_id
    else:
        doc_id = check_doc_id(command.doc_id)
    started_by = await daemon.starter(command.started_by, caller, doc_id)
    if isinstance(command, Revert):
        _, order = await runner.revert_order(command.run_id)
    else:
        order = await runner.restore_order(doc_id, command.backup_id)
    return await daemon.start(command, caller, doc_id, started_by, order)


async def list_backups(daemon: Daemon, command: ListBackups) -> BackupList:
    doc_id = check_doc_id(command.doc_id)
    backups = await daemon.runner.backups(doc_id)
    return BackupList(id=command.id, doc_id=doc_id, backups=tuple(backups))
