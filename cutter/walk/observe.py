"""Re-read what a run's pins describe, for the drift comparison at a gate, and
name the units a drift is about."""

from __future__ import annotations

import msgspec

from cutter.core.errors import CorruptRecord, StopVerifyFailed, UnknownDocument
from cutter.core.plan import verify_result_id
from cutter.core.records import Backup
from cutter.core.restoring import rows_digest, snapshot_id
from cutter.core.review import (
    Region,
    plan_drift,
    regions_of_candidates,
    staged_drift,
    version_drift,
)
from cutter.core.route import Gate, Pin, PinValue
from cutter.core.sidecar import DriftItem, DriftUnit, Sidecar
from cutter.runtime.offloop import discover_off_loop, off_loop
from cutter.walk.phases import restoring
from cutter.walk.phases.context import Services, load_manifest, manifest_digest

MISSING = "<missing>"


async def observe(services: Services, sidecar: Sidecar, gate: Gate) -> dict[Pin, PinValue]:
    """What the pins describe, read again now. The source is hashed from its stored
    bytes, not taken from the hash recorded beside them: a byte changed in place
    is drift even when the record still carries the old hash."""
    observed: dict[Pin, PinValue] = {}
    sources = services.target.sources
    try:
        observed[Pin.SOURCE_VERSION_ID] = (await sources.current(sidecar.doc_id)).sv_id
    except UnknownDocument:
        observed[Pin.SOURCE_VERSION_ID] = MISSING
    stored_sha = await sources.stored_sha(str(sidecar.pins[Pin.SOURCE_VERSION_ID]))
    observed[Pin.SOURCE_SHA] = MISSING if stored_sha is None else stored_sha
    if sidecar.restore is not None:
        return {**observed, **await observe_restore(services, sidecar, gate)}
    manifest = await load_manifest(services.kb, sidecar)
    observed[Pin.MANIFEST_DIGEST] = manifest_digest(manifest) if manifest else MISSING
    observed[Pin.WRITER_DIGEST] = (await services.grants.writer_grants()).writer_digest
    if gate is Gate.SG_1:
        rows = await services.target.ius.rows(sidecar.doc_id)
        observed[Pin.BACKUP_ID] = Backup(doc_id=sidecar.doc_id, rows=tuple(rows)).backup_id
    if gate is Gate.SG_2:
        change_set_id = str(sidecar.pins[Pin.CHANGE_SET_ID])
        rows = await services.target.ius.change_set(change_set_id)
        observed[Pin.VERIFY_RESULT_ID] = verify_result_id(change_set_id, rows)
    return observed


async def observe_restore(services: Services, sidecar: Sidecar, gate: Gate) -> dict[Pin, PinValue]:
    """A restore run's pins read again: its plan, the backup to restore (stored, the
    document's, unchanged), the writer, at SG_1 the rows it would replace, at SG_2 the
    verify result (the rows, both backups) taken again."""
    observed: dict[Pin, PinValue] = {}
    plan = await restoring.load_plan(services.kb, sidecar)
    observed[Pin.MANIFEST_DIGEST] = plan.digest if plan else MISSING
    order = restoring.order_of(sidecar)
    try:
        backup = await restoring.checked_backup(
            services.target.ius, sidecar.doc_id, order.backup_id
        )
        observed[Pin.REGION_SHA] = rows_digest(backup.rows)
    except StopVerifyFailed:
        observed[Pin.REGION_SHA] = MISSING
    observed[Pin.WRITER_DIGEST] = (await services.grants.writer_grants()).writer_digest
    if gate is Gate.SG_1:
        rows = await services.target.ius.rows(sidecar.doc_id)
        observed[Pin.BACKUP_ID] = snapshot_id(sidecar.doc_id, rows)
    if gate is Gate.SG_2:
        try:
            observed[Pin.VERIFY_RESULT_ID] = await restoring.verify_id(services.target, sidecar)
        except StopVerifyFailed:
            observed[Pin.VERIFY_RESULT_ID] = MISSING
    return observed


async def name_units(
    services: Services, sidecar: Sidecar, items: tuple[DriftItem, ...]
) -> tuple[DriftItem, ...]:
    """``items`` with the units behind them: for ``source_version_id`` the planned
    units the document's new version changes, adds or drops; for ``source_sha`` the
    planned units whose bytes in the stored source no longer match; for
    ``verify_result_id`` the staged rows that differ from the plan. Other pins name
    no units."""
    manifest = await load_manifest(services.kb, sidecar)
    if manifest is None:
        return items
    named: list[DriftItem] = []
    for item in items:
        if item.pin == Pin.SOURCE_VERSION_ID.value:
            found = version_drift(manifest, await _current_regions(services, sidecar.doc_id))
        elif item.pin == Pin.SOURCE_SHA.value:
            sv_id = str(sidecar.pins[Pin.SOURCE_VERSION_ID])
            stored = await services.target.sources.stored_bytes(sv_id)
            found = await off_loop(plan_drift, manifest, stored, size=len(stored or b""))
        elif item.pin == Pin.VERIFY_RESULT_ID.value:
            change_set_id = str(sidecar.pins[Pin.CHANGE_SET_ID])
            found = staged_drift(manifest, await services.target.ius.change_set(change_set_id))
        else:
            found = ()
        units = tuple(DriftUnit(label=label, change=change.value) for label, change in found)
        named.append(msgspec.structs.replace(item, units=units) if units else item)
    return tuple(named)


async def _current_regions(services: Services, doc_id: str) -> tuple[Region, ...] | None:
    """The units the discoverer finds in the document's current version (None: the
    document is gone or its bytes do not read back)."""
    sources = services.target.sources
    try:
        data = await sources.content((await sources.current(doc_id)).sv_id)
    except (UnknownDocument, CorruptRecord):
        return None
    candidates = await discover_off_loop(services.discoverer, data)
    return await off_loop(regions_of_candidates, data, candidates, size=len(data))
