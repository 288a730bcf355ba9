"""pre_write_backup and grant_probe: make the cut reversible and prove it is allowed."""

from __future__ import annotations

from cutter.core.errors import StopGrantMissing
from cutter.core.records import REQUIRED_GRANTS, Backup
from cutter.core.route import Pin
from cutter.walk.phases.context import PhaseContext, PhaseOutput


async def snapshot(ctx: PhaseContext) -> Backup:
    """Every IU row of the document as it stands: what a rollback restores."""
    rows = await ctx.services.target.ius.rows(ctx.sidecar.doc_id)
    return Backup(doc_id=ctx.sidecar.doc_id, rows=tuple(rows))


async def pre_write_backup(ctx: PhaseContext) -> PhaseOutput:
    """Pin the snapshot by its content-addressed id, writing nothing: nothing may be
    written before grant_probe and SG_1. Leg A stores this exact snapshot (it must
    still hash to the pin) before its first write."""
    backup = await snapshot(ctx)
    return PhaseOutput(
        pins={Pin.BACKUP_ID: backup.backup_id},
        note=f"{len(backup.rows)} existing IU rows snapshotted",
    )


async def grant_probe(ctx: PhaseContext) -> PhaseOutput:
    grants = await ctx.services.grants.writer_grants()
    held = set(grants.grants)
    missing = sorted(set(REQUIRED_GRANTS) - held)
    if missing:
        raise StopGrantMissing(f"writer {grants.writer} lacks {', '.join(missing)}")
    extra = sorted(held - set(REQUIRED_GRANTS))
    if extra:
        raise StopGrantMissing(
            f"writer {grants.writer} holds more than it needs: {', '.join(extra)}"
        )
    return PhaseOutput(
        pins={Pin.WRITER_DIGEST: grants.writer_digest},
        note=f"writer {grants.writer} holds exactly {', '.join(grants.grants)}",
    )
