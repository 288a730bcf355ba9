"""closeout: the closeout report, the runs-index entry, the final pins.

A live run's cut must still stand in the ledger where its anchor says
(docs/ledger.md §8) before the run may report CLOSEOUT_REPORTED.
"""

from __future__ import annotations

from cutter.core.errors import StopVerifyFailed
from cutter.core.kbdocs import CloseoutReport, RunsIndexEntry, closeout_doc_id, runs_index_id
from cutter.core.mode import Mode
from cutter.core.route import PHASES, Phase, Pin
from cutter.core.states import RunState
from cutter.walk.anchoring import confirm_cut_anchor
from cutter.walk.phases.context import PhaseContext, PhaseOutput


async def closeout(ctx: PhaseContext) -> PhaseOutput:
    sidecar = ctx.sidecar
    kb = ctx.services.kb
    earlier = [p for p in PHASES if p is not Phase.CLOSEOUT]
    missing = [p.value for p in earlier if p not in sidecar.phase_docs]
    for phase in earlier:
        if phase in sidecar.phase_docs:
            try:
                await kb.get(sidecar.phase_docs[phase])
            except KeyError:
                missing.append(phase.value)
    if missing:
        raise StopVerifyFailed(f"phase docs missing from the KB: {', '.join(missing)}")
    anchor = None
    if sidecar.mode is Mode.LIVE:
        anchor = await confirm_cut_anchor(
            kb,
            ctx.services.target.ledger,
            sidecar.run_id,
            ctx.pin_str(Pin.MANIFEST_ENVELOPE_ID),
            kind="cut" if sidecar.restore is None else "revert",
        )
    now = ctx.services.clock()
    report_id = closeout_doc_id(sidecar.run_id)
    await kb.put(
        report_id,
        CloseoutReport(
            run_id=sidecar.run_id,
            doc_id=sidecar.doc_id,
            mode=sidecar.mode,
            pins=dict(sidecar.pins),
            phase_docs=tuple(sidecar.phase_docs[p] for p in earlier),
            approvals=tuple(u.approval_kb_id for g in sidecar.gates for u in g.uses),
            closed_at=now,
            ledger_anchor=anchor,
        ),
    )
    await kb.put(
        runs_index_id(sidecar.run_id),
        RunsIndexEntry(
            run_id=sidecar.run_id,
            doc_id=sidecar.doc_id,
            mode=sidecar.mode,
            state=RunState.CLOSEOUT_REPORTED.value,
            iu_count=int(sidecar.pins[Pin.LIFECYCLE_ENACTED_COUNT]),
            change_set_id=str(sidecar.pins[Pin.CHANGE_SET_ID]),
            closeout_kb_id=report_id,
            closed_at=now,
        ),
    )
    return PhaseOutput(
        pins={Pin.ALL_PHASE_DOCS_UPLOADED: True, Pin.SIDECAR_STATE_FINAL: "success"},
        note=f"closeout report {report_id}"
        + (f"; cut anchored at ledger entry {anchor.seq}" if anchor else ""),
    )
