"""The eleven phase bodies: one table from phase to body for a cut, one for a restore
run (``cutter revert``/``cutter restore``, docs/revert.md), chosen by the sidecar."""

from __future__ import annotations

from collections.abc import Mapping

from cutter.core.route import Phase
from cutter.core.sidecar import Sidecar
from cutter.walk.phases import restoring
from cutter.walk.phases.closeout import closeout
from cutter.walk.phases.context import PhaseBody, PhaseContext, PhaseOutput, Services
from cutter.walk.phases.planning import cutplan, mark, source_pin
from cutter.walk.phases.safety import grant_probe, pre_write_backup
from cutter.walk.phases.verify import structural_verify, write_verify
from cutter.walk.phases.writes import cut_leg_a, leg_b_record, lifecycle_enact, rollback

BODIES: Mapping[Phase, PhaseBody] = {
    Phase.SOURCE_PIN: source_pin,
    Phase.MARK: mark,
    Phase.CUTPLAN: cutplan,
    Phase.PRE_WRITE_BACKUP: pre_write_backup,
    Phase.GRANT_PROBE: grant_probe,
    Phase.CUT_LEG_A: cut_leg_a,
    Phase.STRUCTURAL_VERIFY: structural_verify,
    Phase.LEG_B_RECORD: leg_b_record,
    Phase.WRITE_VERIFY: write_verify,
    Phase.LIFECYCLE_ENACT: lifecycle_enact,
    Phase.CLOSEOUT: closeout,
}

RESTORE_BODIES: Mapping[Phase, PhaseBody] = {
    Phase.SOURCE_PIN: restoring.source_pin,
    Phase.MARK: restoring.mark,
    Phase.CUTPLAN: restoring.cutplan,
    Phase.PRE_WRITE_BACKUP: pre_write_backup,
    Phase.GRANT_PROBE: grant_probe,
    Phase.CUT_LEG_A: restoring.cut_leg_a,
    Phase.STRUCTURAL_VERIFY: restoring.structural_verify,
    Phase.LEG_B_RECORD: restoring.leg_b_record,
    Phase.WRITE_VERIFY: restoring.write_verify,
    Phase.LIFECYCLE_ENACT: restoring.lifecycle_enact,
    Phase.CLOSEOUT: closeout,
}


def bodies_for(sidecar: Sidecar) -> Mapping[Phase, PhaseBody]:
    """The body table of the run's kind: a restore run's, or the cut's."""
    return BODIES if sidecar.restore is None else RESTORE_BODIES


__all__ = [
    "BODIES",
    "RESTORE_BODIES",
    "PhaseBody",
    "PhaseContext",
    "PhaseOutput",
    "Services",
    "bodies_for",
    "rollback",
]
