"""The eleven phase bodies, one table from phase to body."""

from __future__ import annotations

from collections.abc import Mapping

from cutter.core.route import Phase
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

__all__ = ["BODIES", "PhaseBody", "PhaseContext", "PhaseOutput", "Services", "rollback"]
