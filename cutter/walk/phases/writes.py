"""cut_leg_a, leg_b_record, lifecycle_enact, and rollback: the phases that write.

Each is idempotent: run twice, it writes nothing new and returns the same pins.
``cut_leg_a`` and ``lifecycle_enact`` run their ``before_*`` hooks once the gate is
judged again and before their first write (docs/operations.md, Hooks): a veto stops
the run there, before leg A with nothing written. A dry run's replay of leg A into a
fresh sandbox runs no hook (it did at the step itself).
A live run anchors each ledger entry it appends (docs/ledger.md §8): the entry
first, then its anchor, so a replay after a crash in between finds the entry
(appends are idempotent) and records the anchor of exactly that entry.
"""

from __future__ import annotations

from cutter.core import hook_events
from cutter.core.anchors import anchor_of
from cutter.core.errors import StopVerifyFailed
from cutter.core.hook_names import HookEvent
from cutter.core.kbdocs import LedgerAnchor
from cutter.core.ledger import CutEnvelope, LedgerEntry, RollbackEnvelope
from cutter.core.mode import Mode
from cutter.core.plan import change_set_id_for, staged_rows
from cutter.core.ports import KnowledgeBase, Ledger, Target
from cutter.core.restoring import snapshot_id
from cutter.core.route import Gate, Pin
from cutter.core.sidecar import Sidecar
from cutter.runtime.failpoints import failpoint
from cutter.walk.anchoring import record_anchor
from cutter.walk.phases.context import PhaseContext, PhaseOutput
from cutter.walk.phases.safety import snapshot


async def cut_leg_a(ctx: PhaseContext) -> PhaseOutput:
    # SG_1 judged again from the policy and the KB, not from the sidecar (cutter.walk.gate_check).
    await ctx.services.gates.verify(ctx.sidecar, Gate.SG_1)
    manifest = await ctx.manifest()
    data = await ctx.source_bytes()
    change_set_id = change_set_id_for(ctx.run_id, ctx.pin_str(Pin.MANIFEST_DIGEST))
    if not ctx.replay:  # a veto stops the run here: no backup, no row, no ledger entry
        payload = hook_events.before_leg_a(ctx.sidecar, change_set_id, len(manifest.ius))
        await ctx.services.hooks.before(HookEvent.BEFORE_LEG_A, payload)
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
    return await recorded(ctx, entry, "cut")


async def recorded(ctx: PhaseContext, entry: LedgerEntry, what: str) -> PhaseOutput:
    """leg_b_record's end, once its envelope is appended as ``entry``: a live run anchors
    it (a dry run's entry is in a sandbox thrown away), and a different anchor recorded
    before stops the run; the entry's hash is the pin. ``what`` names the run's write
    ("cut", "restore") in that stop."""
    failpoint("leg_b:appended")
    if ctx.sidecar.mode is Mode.LIVE:
        anchor = anchor_of(entry)
        held = await record_anchor(ctx.services.kb, anchor)
        if held != anchor:
            raise StopVerifyFailed(
                f"this run's {what} was anchored at ledger entry {held.seq} "
                f"({held.entry_hash[:12]}…); the ledger now returns entry {entry.seq} "
                f"({entry.entry_hash[:12]}…)"
            )
    return PhaseOutput(
        pins={Pin.MANIFEST_ENVELOPE_ID: entry.entry_hash},
        note=f"ledger entry {entry.seq} recorded",
    )


async def lifecycle_enact(ctx: PhaseContext) -> PhaseOutput:
    change_set_id = ctx.pin_str(Pin.CHANGE_SET_ID)
    target = ctx.services.target
    await ctx.services.gates.verify(ctx.sidecar, Gate.SG_2)  # a stop here undoes leg A
    payload = hook_events.before_lifecycle_enact(ctx.sidecar)
    await ctx.services.hooks.before(HookEvent.BEFORE_LIFECYCLE_ENACT, payload)  # so does a veto
    count = await target.ius.enact(change_set_id)
    failpoint("enact:mid")
    planned = int(ctx.sidecar.pins[Pin.IU_COUNT])
    if count != planned:
        raise StopVerifyFailed(f"{count} IUs enacted, {planned} planned")
    await target.sources.mark_cut(ctx.pin_str(Pin.SOURCE_VERSION_ID), change_set_id)
    # What the cut left, for a later revert to check the document still holds.
    rows_after = snapshot_id(ctx.sidecar.doc_id, await target.ius.rows(ctx.sidecar.doc_id))
    return PhaseOutput(
        pins={
            Pin.LIFECYCLE_ENACTED: True,
            Pin.LIFECYCLE_ENACTED_COUNT: count,
            Pin.ROWS_AFTER: rows_after,
        },
        note=f"{count} IUs active; source version marked as cut",
    )


async def rollback(
    target: Target, sidecar: Sidecar, reason: str, *, kb: KnowledgeBase | None = None
) -> LedgerAnchor | None:
    """Put the document's rows back as the backup holds them and record the rollback in
    the ledger. Returns the ledger entry's anchor, or None when nothing was undone (no
    change set yet); an anchor is truthy, so ``if await rollback(...)`` still reads
    "anything undone".

    With ``kb``, a live run's anchor is recorded there too (a dry run's entry is in its
    sandbox, never anchored): callers pass ``kb=services.kb``. Safe to call again after
    a crash at any point, even with another ``reason``: the rows are restored before
    the entry is appended, so once the run's rollback entry of this change set is in
    the ledger nothing is restored again (rows written since then are left alone) and
    that entry, with its first reason, is the one anchored; an anchor recorded before
    is kept."""
    pins = sidecar.pins
    if Pin.CHANGE_SET_ID not in pins or Pin.BACKUP_ID not in pins:
        return None
    change_set_id = str(pins[Pin.CHANGE_SET_ID])
    entry = await _rollback_entry(target.ledger, sidecar.run_id, change_set_id)
    if entry is None:
        backup = await target.ius.load_backup(str(pins[Pin.BACKUP_ID]))
        await target.ius.restore(backup)
        entry = await target.ledger.append(
            RollbackEnvelope(
                run_id=sidecar.run_id,
                doc_id=sidecar.doc_id,
                sv_id=str(pins[Pin.SOURCE_VERSION_ID]),
                change_set_id=change_set_id,
                backup_id=backup.backup_id,
                reason=reason,
            )
        )
    anchor = anchor_of(entry)
    if kb is not None and sidecar.mode is Mode.LIVE:
        # A differing anchor recorded before is kept (and logged): it is evidence that
        # the ledger changed, which verify-ledger reports.
        await record_anchor(kb, anchor)
    return anchor


async def _rollback_entry(ledger: Ledger, run_id: str, change_set_id: str) -> LedgerEntry | None:
    """The run's rollback entry of this change set, if the ledger has one."""
    for entry in await ledger.entries():
        held = entry.envelope
        if (
            isinstance(held, RollbackEnvelope)
            and held.run_id == run_id
            and held.change_set_id == change_set_id
        ):
            return entry
    return None
