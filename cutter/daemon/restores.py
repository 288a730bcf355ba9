"""The daemon's ``revert``, ``restore`` and ``backups`` commands (docs/revert.md).

A restore run is started as ``start`` starts a cut: the mode checked, the declared
``started_by`` the caller's own (or a relay's), the policy's starters for the
document, and what would be restored checked before anything is recorded
(``BackupUnknown``, ``NotRevertible``, ``RevertRefused``); with ``wait`` off the run
is recorded, holding its document, before ``Accepted``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cutter.core.errors import AccessDenied
from cutter.core.ids import check_doc_id, check_run_id, new_run_id
from cutter.core.mode import require_mode_allowed
from cutter.core.policy import listed
from cutter.core.principals import Caller, acting
from cutter.core.protocol import (
    Accepted,
    BackupList,
    ListBackups,
    Restore,
    Revert,
    RunInfo,
    RunSummary,
)

if TYPE_CHECKING:
    from cutter.daemon.service import Daemon


async def start_restore(
    daemon: Daemon, command: Revert | Restore, caller: Caller
) -> Accepted | RunInfo:
    require_mode_allowed(command.mode)
    runner = daemon.runner
    if isinstance(command, Revert):
        doc_id = (await runner.status(check_run_id(command.run_id))).doc_id
    else:
        doc_id = check_doc_id(command.doc_id)
    policy = (await daemon.policy()).policy
    started_by = acting(policy, caller, "started_by", command.started_by)
    if not listed(started_by, policy.starters_for(doc_id)):
        raise AccessDenied(f"{started_by} may not start runs of {doc_id}")
    if isinstance(command, Revert):
        _, order = await runner.revert_order(command.run_id)
    else:
        order = await runner.restore_order(doc_id, command.backup_id)
    run_id = new_run_id()
    if not command.wait:
        await daemon.job(
            lambda: runner.open(
                doc_id,
                command.mode,
                started_by=started_by,
                run_id=run_id,
                principal=caller.principal,
                restore=order,
            )
        )

        async def walk() -> RunSummary:
            return RunSummary.of(await runner.resume(run_id))

        daemon.background(walk, f"restore {run_id}")
        return Accepted(id=command.id, run_id=run_id)

    async def start() -> RunSummary:
        if isinstance(command, Revert):
            sidecar = await runner.revert(
                command.run_id,
                command.mode,
                started_by=started_by,
                run_id=run_id,
                principal=caller.principal,
            )
        else:
            sidecar = await runner.restore(
                doc_id,
                command.backup_id,
                command.mode,
                started_by=started_by,
                run_id=run_id,
                principal=caller.principal,
            )
        return RunSummary.of(sidecar)

    return RunInfo(id=command.id, run=await daemon.job(start))


async def list_backups(daemon: Daemon, command: ListBackups) -> BackupList:
    doc_id = check_doc_id(command.doc_id)
    backups = await daemon.runner.backups(doc_id)
    return BackupList(id=command.id, doc_id=doc_id, backups=tuple(backups))
