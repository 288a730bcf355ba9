"""cut_leg_a, leg_b_record, lifecycle_enact, and rollback: the phases that write.

Each is idempotent: run twice, it writes nothing new and returns the same pins.
"""

from __future__ import annotations

from cutter.errors import StopVerifyFailed
from cutter.failpoints import failpoint
from cutter.ledger import CutEnvelope, RollbackEnvelope
from cutter.phases.context import PhaseContext, PhaseOutput
from cutter.phases.safety import snapshot
from cutter.plan import change_set_id_for, staged_rows
from cutter.ports import Target
from cutter.sidecar import Sidecar
from cutter.walk import Pin


async def cut_leg_a(ctx: PhaseContext) -> PhaseOutput:
    manifest = await ctx.manifest()
    data = await ctx.source_bytes()
    change_set_id = change_set_id_for(ctx.run_id, ctx.pin_str(Pin.MANIFEST_DIGEST))
    ius = ctx.services.target.ius
    if not await ius.change_set(change_set_id):
        # First write of this cut: store the pinned snapshot, still exactly as pinned.
        backup = await snapshot(ctx)
        if backup.backup_id != ctx.pin_str(Pin.BACKUP_ID):
            raise StopVerifyFailed("the document's IU rows changed since they were snapshotted")
        await ius.save_backup(backup)
    failpoint("leg_a:mid")
    added = await ius.write_staged(staged_rows(manifest, data, change_set_id))
    failpoint("leg_a:written")
    return PhaseOutput(
        pins={Pin.CHANGE_SET_ID: change_set_id},
        note=f"{added} staged IUs written ({len(manifest.ius) - added} already present)",
    )


async def leg_b_record(ctx: PhaseContext) -> PhaseOutput:
    manifest = await ctx.manifest()
    entry = await ctx.services.target.ledger.append(
        CutEnvelope(
            run_id=ctx.run_id,
            doc_id=manifest.doc_id,
            sv_id=manifest.sv_id,
            change_set_id=ctx.pin_str(Pin.CHANGE_SET_ID),
            manifest_digest=ctx.pin_str(Pin.MANIFEST_DIGEST),
            iu_count=len(manifest.ius),
        )
    )
    return PhaseOutput(
        pins={Pin.MANIFEST_ENVELOPE_ID: entry.entry_hash},
        note=f"ledger entry {entry.seq} recorded",
    )


async def lifecycle_enact(ctx: PhaseContext) -> PhaseOutput:
    change_set_id = ctx.pin_str(Pin.CHANGE_SET_ID)
    target = ctx.services.target
    count = await target.ius.enact(change_set_id)
    failpoint("enact:mid")
    planned = int(ctx.sidecar.pins[Pin.IU_COUNT])
    if count != planned:
        raise StopVerifyFailed(f"{count} IUs enacted, {planned} planned")
    await target.sources.mark_cut(ctx.pin_str(Pin.SOURCE_VERSION_ID), change_set_id)
    return PhaseOutput(
        pins={Pin.LIFECYCLE_ENACTED: True, Pin.LIFECYCLE_ENACTED_COUNT: count},
        note=f"{count} IUs active; source version marked as cut",
    )


async def rollback(target: Target, sidecar: Sidecar, reason: str) -> bool:
    """Put the document's rows back as the backup holds them. True if anything was undone."""
    pins = sidecar.pins
    if Pin.CHANGE_SET_ID not in pins or Pin.BACKUP_ID not in pins:
        return False
    backup = await target.ius.load_backup(str(pins[Pin.BACKUP_ID]))
    await target.ius.restore(backup)
    await target.ledger.append(
        RollbackEnvelope(
            run_id=sidecar.run_id,
            doc_id=sidecar.doc_id,
            sv_id=str(pins[Pin.SOURCE_VERSION_ID]),
            change_set_id=str(pins[Pin.CHANGE_SET_ID]),
            backup_id=backup.backup_id,
            reason=reason,
        )
    )
    return True
