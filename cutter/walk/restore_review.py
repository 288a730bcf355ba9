"""What a restore run's open gate authorises (``cutter review``; docs/revert.md): the
rows active after the restore as units, the diff against the active rows now, and
the plan in a note. The cut's review is ``cutter.walk.gate_review``."""

from __future__ import annotations

import msgspec

from cutter.core.canonical import sha256_hex
from cutter.core.errors import CorruptRecord, PhaseStop
from cutter.core.records import IURow
from cutter.core.review import (
    ChangeSetView,
    GateReview,
    UnitView,
    active_rows,
    diff_units,
    first_line,
    regions_of_rows,
)
from cutter.core.route import Gate, Phase, Pin
from cutter.core.sidecar import GateRecord, Sidecar
from cutter.walk.phases import Services, restoring


def _views(rows: list[IURow]) -> tuple[UnitView, ...]:
    return tuple(
        UnitView(
            ordinal=r.ordinal,
            label=r.label,
            kind=r.kind,
            number=None,
            path=(),
            start=r.start,
            end=r.end,
            size=len(r.body),
            region_sha=r.region_sha,
            first_line=first_line(r.body),
        )
        for r in rows
    )


async def restore_review(services: Services, sidecar: Sidecar, gate: GateRecord) -> GateReview:
    plan = await restoring.load_plan(services.kb, sidecar)
    if plan is None or plan.digest != str(sidecar.pins[Pin.MANIFEST_DIGEST]):
        raise CorruptRecord(
            f"runs/{sidecar.run_id}/{Phase.CUTPLAN.value}",
            "the restore plan does not match the run's pinned manifest digest",
        )
    try:
        backup = await restoring.checked_backup(services.target.ius, sidecar.doc_id, plan.to_backup)
    except PhaseStop as exc:
        raise CorruptRecord(f"backups/{plan.to_backup}", exc.message) from exc
    now = active_rows(await services.target.ius.rows(sidecar.doc_id))
    after = active_rows(backup.rows)
    what = f"revert of run {plan.reverts}" if plan.reverts else "restore"
    note = (
        f"{what}: the rows of {plan.doc_id} go back to backup {plan.to_backup} "
        f"({plan.rows} rows, {plan.active} active); now {plan.from_rows}"
    )
    # The units are shown on the text of the version they cut: a revert of a re-cut
    # brings back the units of an earlier version than the document's current one.
    sv_id, sha, size = (
        plan.sv_id,
        str(sidecar.pins[Pin.SOURCE_SHA]),
        int(sidecar.pins[Pin.SOURCE_SIZE]),
    )
    notes = [note]
    versions = {r.sv_id for r in after}
    if len(versions) == 1 and (older := versions.pop()) != plan.sv_id:
        data = await services.target.sources.stored_bytes(older)
        if data is not None:
            sv_id, sha, size = older, sha256_hex(data), len(data)
            notes.append(
                f"the units brought back cut version {older}; the document is at {plan.sv_id}"
            )
    review = GateReview(
        run_id=sidecar.run_id,
        doc_id=sidecar.doc_id,
        gate=gate.gate.value,
        request_digest=gate.request_digest,
        source_version_id=sv_id,
        source_sha=sha,
        source_size=size,
        units=_views(after),
        warnings=(),
        diff=diff_units(regions_of_rows(now), regions_of_rows(after)),
        notes=tuple(notes),
    )
    if gate.gate is Gate.SG_1:
        return review
    keep = {(r.sv_id, r.ordinal, r.region_sha) for r in after}
    retire = [r for r in now if (r.sv_id, r.ordinal, r.region_sha) not in keep]
    return msgspec.structs.replace(
        review,
        verify_result_id=str(sidecar.pins[Pin.VERIFY_RESULT_ID]),
        change_set=ChangeSetView(
            change_set_id=str(sidecar.pins[Pin.CHANGE_SET_ID]),
            staged=False,
            activate=regions_of_rows(after),
            retire=regions_of_rows(retire),
        ),
    )
