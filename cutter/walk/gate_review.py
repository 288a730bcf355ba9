"""Gather what a run's open gate authorises (``cutter review``) from the run's own
records: the cut plan (the cutplan phase doc), the pinned source bytes and the
discoverer's warnings on them, and the target's rows. The comparison itself is
``cutter.core.review`` (pure)."""

from __future__ import annotations

import msgspec

from cutter.core.errors import CorruptRecord, GateRequestDamaged
from cutter.core.kbdocs import PhaseDoc
from cutter.core.plan import staged_rows
from cutter.core.review import (
    ChangeSetView,
    GateReview,
    PhaseResult,
    active_rows,
    diff_units,
    named_units,
    plan_drift,
    regions_of_plan,
    regions_of_rows,
    unit_views,
)
from cutter.core.route import Gate, Phase, Pin
from cutter.core.sidecar import Sidecar
from cutter.runtime.offloop import explain_off_loop
from cutter.walk.gate_check import request_damage
from cutter.walk.phases.context import Services, load_manifest, manifest_digest
from cutter.walk.restore_review import restore_review

VERIFY_PHASES = (Phase.STRUCTURAL_VERIFY, Phase.WRITE_VERIFY)


async def gate_review(services: Services, sidecar: Sidecar) -> GateReview:
    gate = sidecar.waiting_gate("nothing to review")
    try:
        request: object = await services.kb.get(gate.request_kb_id)
    except (KeyError, CorruptRecord):
        request = None
    why = request_damage(sidecar, gate, request)
    if why is not None:  # what a reviewer would be shown is not what the run recorded
        raise GateRequestDamaged(sidecar.run_id, why)
    if sidecar.restore is not None:
        return await restore_review(services, sidecar, gate)
    manifest = await load_manifest(services.kb, sidecar)
    if manifest is None or manifest_digest(manifest) != str(sidecar.pins[Pin.MANIFEST_DIGEST]):
        raise CorruptRecord(
            f"runs/{sidecar.run_id}/{Phase.CUTPLAN.value}",
            "the cut plan does not match the run's pinned manifest digest",
        )
    sv_id = str(sidecar.pins[Pin.SOURCE_VERSION_ID])
    notes: list[str] = []
    try:
        data = await services.target.sources.content(sv_id)
    except CorruptRecord:
        data = await services.target.sources.stored_bytes(sv_id) or b""
        drifted = [f"{change.value} {label}" for label, change in plan_drift(manifest, data)]
        notes.append(
            f"the stored source {sv_id} no longer matches its pinned sha: approving stops "
            f"at drift ({named_units(drifted) or 'no unit named'}); first lines are read "
            "from the bytes as stored now"
        )
    discoverer = services.discoverer
    explained = await explain_off_loop(discoverer, data)
    warnings = () if explained is None else explained.warnings
    rows = await services.target.ius.rows(sidecar.doc_id)
    active = active_rows(rows)
    review = GateReview(
        run_id=sidecar.run_id,
        doc_id=sidecar.doc_id,
        gate=gate.gate.value,
        request_digest=gate.request_digest,
        source_version_id=sv_id,
        source_sha=manifest.source_sha,
        source_size=manifest.source_size,
        units=unit_views(manifest.ius, data),
        warnings=tuple(warnings),
        diff=diff_units(regions_of_rows(active), regions_of_plan(manifest.ius)),
        notes=tuple(notes),
    )
    if gate.gate is Gate.SG_1:
        return review
    verify: list[PhaseResult] = []
    for phase in VERIFY_PHASES:
        kb_id = sidecar.phase_docs.get(phase)
        doc = None if kb_id is None else await services.kb.get(kb_id)
        if isinstance(doc, PhaseDoc):
            verify.append(PhaseResult(phase=phase.value, passed_at=doc.passed_at, note=doc.note))
    change_set_id = str(sidecar.pins[Pin.CHANGE_SET_ID])
    staged = await services.target.ius.change_set(change_set_id)
    written = bool(staged)
    if not written:  # a dry run: nothing was written; show what leg A would have staged
        staged = staged_rows(manifest, data, change_set_id)
    return msgspec.structs.replace(
        review,
        verify=tuple(verify),
        verify_result_id=str(sidecar.pins[Pin.VERIFY_RESULT_ID]),
        change_set=ChangeSetView(
            change_set_id=change_set_id,
            staged=written,
            activate=regions_of_rows(staged),
            retire=regions_of_rows(r for r in active if r.change_set_id != change_set_id),
        ),
    )
