"""The phase bodies of a restore run (``cutter revert``, ``cutter restore``;
docs/revert.md): the cut's eleven phases and contracts, other bodies.

Nothing is written before SG_1; leg A stores the pre-restore snapshot (what makes
the restore itself revertible, and what a rollback puts back) and writes no rows;
the rows change only in ``lifecycle_enact``, under SG_2, as a cut's rows become
visible only there. ``pre_write_backup``, ``grant_probe`` and ``closeout`` are the
cut's own. Each body is idempotent, as the cut's are, and leg A and enact run the
``before_*`` hooks as the cut's do (a veto stops the run before they write).
"""

from __future__ import annotations

from cutter.core import hook_events
from cutter.core.errors import (
    CorruptRecord,
    StopPlanInvalid,
    StopVerifyFailed,
)
from cutter.core.hook_names import HookEvent
from cutter.core.kbdocs import PhaseDoc
from cutter.core.ledger import RevertEnvelope
from cutter.core.plan import change_set_id_for
from cutter.core.ports import IUStore, KnowledgeBase, Target
from cutter.core.records import Backup
from cutter.core.restoring import (
    RestoreOrder,
    RestorePlan,
    active_of,
    cut_mark_after,
    rows_digest,
    snapshot_id,
    tiling_problems,
    verify_result,
)
from cutter.core.route import Gate, Phase, Pin
from cutter.core.sidecar import Sidecar
from cutter.runtime.failpoints import failpoint
from cutter.walk.phases.context import PhaseContext, PhaseOutput
from cutter.walk.phases.planning import current_version, version_pinned
from cutter.walk.phases.safety import snapshot
from cutter.walk.phases.writes import recorded


def order_of(sidecar: Sidecar) -> RestoreOrder:
    order = sidecar.restore
    if order is None:
        raise StopPlanInvalid(f"run {sidecar.run_id} is not a restore run")
    return order


async def checked_backup(ius: IUStore, doc_id: str, backup_id: str) -> Backup:
    """The stored backup ``backup_id`` of ``doc_id``, its content hashing to its id."""
    try:
        backup = await ius.load_backup(backup_id)
    except CorruptRecord as exc:
        raise StopVerifyFailed(f"backup {backup_id} cannot be read: {exc.message}") from exc
    if backup.backup_id != backup_id:
        raise StopVerifyFailed(f"backup {backup_id} does not hash to its id")
    if backup.doc_id != doc_id or any(r.doc_id != doc_id for r in backup.rows):
        raise StopVerifyFailed(f"backup {backup_id} is not a backup of document {doc_id}")
    return backup


async def load_plan(kb: KnowledgeBase, sidecar: Sidecar) -> RestorePlan | None:
    """The restore plan of the run's cutplan phase doc, if it has one."""
    kb_id = sidecar.phase_docs.get(Phase.CUTPLAN)
    if kb_id is None:
        return None
    try:
        doc = await kb.get(kb_id)
    except (KeyError, CorruptRecord):
        return None
    return doc.restore_plan if isinstance(doc, PhaseDoc) else None


async def pinned_plan(ctx: PhaseContext) -> RestorePlan:
    plan = await load_plan(ctx.services.kb, ctx.sidecar)
    if plan is None or plan.digest != ctx.pin_str(Pin.MANIFEST_DIGEST):
        raise StopVerifyFailed("stored restore plan does not match the pinned manifest_digest")
    return plan


async def source_pin(ctx: PhaseContext) -> PhaseOutput:
    """The document's current version, cut or not: a restore puts rows back whatever
    cut the version."""
    return version_pinned(await current_version(ctx))


async def mark(ctx: PhaseContext) -> PhaseOutput:
    """The backup to restore: stored, the document's, hashing to its id."""
    order = order_of(ctx.sidecar)
    try:
        backup = await checked_backup(ctx.services.target.ius, ctx.sidecar.doc_id, order.backup_id)
    except StopVerifyFailed as exc:
        raise StopPlanInvalid(exc.message) from exc
    return PhaseOutput(
        pins={Pin.CANDIDATE_COUNT: len(backup.rows), Pin.REGION_SHA: rows_digest(backup.rows)},
        note=f"backup {order.backup_id}: {len(backup.rows)} rows to restore",
    )


async def cutplan(ctx: PhaseContext) -> PhaseOutput:
    """The restore plan: from the rows as they stand to the backup's."""
    sidecar = ctx.sidecar
    order = order_of(sidecar)
    target = ctx.services.target
    version = await target.sources.current(sidecar.doc_id)
    if version.sv_id != ctx.pin_str(Pin.SOURCE_VERSION_ID):
        raise StopPlanInvalid("the document changed version while being planned")
    backup = await checked_backup(target.ius, sidecar.doc_id, order.backup_id)
    if rows_digest(backup.rows) != ctx.pin_str(Pin.REGION_SHA):
        raise StopPlanInvalid("the backup changed since mark")
    from_rows = snapshot_id(sidecar.doc_id, await target.ius.rows(sidecar.doc_id))
    if order.from_rows is not None and from_rows != order.from_rows:
        raise StopPlanInvalid(
            f"the rows of {sidecar.doc_id} changed since the revert of {order.reverts} was "
            "checked: start it again to be told what changed"
        )
    plan = RestorePlan(
        doc_id=sidecar.doc_id,
        sv_id=version.sv_id,
        from_rows=from_rows,
        to_backup=order.backup_id,
        reverts=order.reverts,
        rows=len(backup.rows),
        active=len(active_of(backup.rows)),
    )
    what = f"revert of run {order.reverts}" if order.reverts else "restore"
    return PhaseOutput(
        pins={Pin.MANIFEST_DIGEST: plan.digest, Pin.IU_COUNT: plan.active},
        note=f"{what}: rows {from_rows} -> backup {order.backup_id}, "
        f"{plan.active} IUs active after",
        restore_plan=plan,
    )


async def cut_leg_a(ctx: PhaseContext) -> PhaseOutput:
    """Store the pre-restore snapshot, exactly as pinned; no row is written."""
    await ctx.services.gates.verify(ctx.sidecar, Gate.SG_1)
    plan = await pinned_plan(ctx)
    change_set_id = change_set_id_for(ctx.run_id, ctx.pin_str(Pin.MANIFEST_DIGEST))
    if not ctx.replay:  # as a cut's: a veto stops the run here, nothing stored
        payload = hook_events.before_leg_a(ctx.sidecar, change_set_id, plan.active)
        await ctx.services.hooks.before(HookEvent.BEFORE_LEG_A, payload)
    ius = ctx.services.target.ius
    backup = await snapshot(ctx)
    if backup.backup_id != ctx.pin_str(Pin.BACKUP_ID):
        raise StopVerifyFailed("the document's IU rows changed since they were snapshotted")
    await ius.save_backup(backup)
    failpoint("leg_a:mid")
    return PhaseOutput(
        pins={Pin.CHANGE_SET_ID: change_set_id},
        note=f"pre-restore backup {backup.backup_id} stored ({len(backup.rows)} rows); "
        "no row written",
    )


async def structural_verify(ctx: PhaseContext) -> PhaseOutput:
    """The rows to restore tile their source versions exactly."""
    order = order_of(ctx.sidecar)
    target = ctx.services.target
    backup = await checked_backup(target.ius, ctx.sidecar.doc_id, order.backup_id)
    sources: dict[str, bytes] = {}
    for sv_id in sorted({r.sv_id for r in active_of(backup.rows)}):
        data = await target.sources.stored_bytes(sv_id)
        if data is not None:
            sources[sv_id] = data
    problems = tiling_problems(backup.rows, sources)
    if problems:
        raise StopVerifyFailed("structural verify: " + "; ".join(problems[:3]))
    active = len(active_of(backup.rows))
    return PhaseOutput(
        pins={Pin.STRUCTURAL_VERIFIED: True},
        note=f"{active} rows to restore tile {len(sources)} source version(s) exactly",
    )


async def leg_b_record(ctx: PhaseContext) -> PhaseOutput:
    plan = await pinned_plan(ctx)
    entry = await ctx.services.target.ledger.append(
        RevertEnvelope(
            run_id=ctx.run_id,
            doc_id=plan.doc_id,
            sv_id=plan.sv_id,
            change_set_id=ctx.pin_str(Pin.CHANGE_SET_ID),
            reverts=plan.reverts,
            backup_id=plan.to_backup,
            pre_restore_backup_id=ctx.pin_str(Pin.BACKUP_ID),
            iu_count=plan.active,
        )
    )
    return await recorded(ctx, entry, "restore")


async def verify_id(target: Target, sidecar: Sidecar) -> str:
    """The restore's ``verify_result_id`` from fresh reads: the rows as they stand, the
    stored pre-restore backup and the backup to restore (each checked against its id)."""
    order = order_of(sidecar)
    pre = str(sidecar.pins[Pin.BACKUP_ID])
    await checked_backup(target.ius, sidecar.doc_id, pre)
    await checked_backup(target.ius, sidecar.doc_id, order.backup_id)
    rows_now = snapshot_id(sidecar.doc_id, await target.ius.rows(sidecar.doc_id))
    return verify_result(str(sidecar.pins[Pin.CHANGE_SET_ID]), rows_now, pre, order.backup_id)


async def write_verify(ctx: PhaseContext) -> PhaseOutput:
    """Read back both backups the restore depends on; the rows are still the snapshot."""
    target = ctx.services.target
    pre = ctx.pin_str(Pin.BACKUP_ID)
    rows_now = snapshot_id(ctx.sidecar.doc_id, await target.ius.rows(ctx.sidecar.doc_id))
    if rows_now != pre:
        raise StopVerifyFailed("write verify: the rows changed since the pre-restore backup")
    result = await verify_id(target, ctx.sidecar)
    return PhaseOutput(
        pins={Pin.VERIFY_RESULT_ID: result},
        note=f"pre-restore backup {pre} and backup {order_of(ctx.sidecar).backup_id} read back",
    )


async def lifecycle_enact(ctx: PhaseContext) -> PhaseOutput:
    """Put the rows back, then the current version's cut mark as the rows say."""
    sidecar = ctx.sidecar
    target = ctx.services.target
    await ctx.services.gates.verify(sidecar, Gate.SG_2)  # a stop here undoes nothing yet
    payload = hook_events.before_lifecycle_enact(sidecar)
    await ctx.services.hooks.before(HookEvent.BEFORE_LIFECYCLE_ENACT, payload)  # so does a veto
    order = order_of(sidecar)
    backup = await checked_backup(target.ius, sidecar.doc_id, order.backup_id)
    await target.ius.restore(backup)
    failpoint("enact:mid")
    rows = await target.ius.rows(sidecar.doc_id)
    count = len(active_of(rows))
    planned = int(sidecar.pins[Pin.IU_COUNT])
    if count != planned:
        raise StopVerifyFailed(f"{count} IUs active after the restore, {planned} planned")
    sv_id = ctx.pin_str(Pin.SOURCE_VERSION_ID)
    mark = cut_mark_after(rows, sv_id)
    await target.sources.set_cut(sv_id, mark)
    return PhaseOutput(
        pins={
            Pin.LIFECYCLE_ENACTED: True,
            Pin.LIFECYCLE_ENACTED_COUNT: count,
            Pin.ROWS_AFTER: snapshot_id(sidecar.doc_id, rows),
        },
        note=f"rows restored from {order.backup_id}: {count} IUs active; version {sv_id} "
        + (f"cut by {mark}" if mark else "not cut"),
    )


async def committed(target: Target, sidecar: Sidecar) -> bool:
    """Whether the restore's last write happened: the rows are the backup's and the
    current version's cut mark is what they say. From there the restore stands."""
    order = order_of(sidecar)
    rows = await target.ius.rows(sidecar.doc_id)
    if snapshot_id(sidecar.doc_id, rows) != order.backup_id:
        return False
    sv_id = str(sidecar.pins[Pin.SOURCE_VERSION_ID])
    return await target.sources.cut_by(sv_id) == cut_mark_after(rows, sv_id)
