"""The eleven phases, the two sovereign gates between them, and each phase's contract.

A contract names the pins a phase requires and the pins it produces. The
supervisor refuses to start a phase whose inputs are missing and refuses a
result that lacks a declared output or adds an undeclared one. Pins are
write-once: a phase may not change a pin another phase set.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from cutter.core.errors import StopContractViolated
from cutter.core.states import RunState

PinValue = str | int | bool


class Pin(enum.StrEnum):
    SOURCE_VERSION_ID = "source_version_id"
    SOURCE_SHA = "source_sha"
    SOURCE_SIZE = "source_size"
    CANDIDATE_COUNT = "candidate_count"
    REGION_SHA = "region_sha"
    MANIFEST_DIGEST = "manifest_digest"
    IU_COUNT = "iu_count"
    BACKUP_ID = "backup_id"
    WRITER_DIGEST = "writer_digest"
    CHANGE_SET_ID = "change_set_id"
    STRUCTURAL_VERIFIED = "structural_verified"
    MANIFEST_ENVELOPE_ID = "manifest_envelope_id"
    VERIFY_RESULT_ID = "verify_result_id"
    LIFECYCLE_ENACTED = "lifecycle_enacted"
    LIFECYCLE_ENACTED_COUNT = "lifecycle_enacted_count"
    # The snapshot id (``Backup.backup_id``) of the document's rows as lifecycle_enact
    # left them: what a revert checks the document still holds (cutter.core.revert).
    ROWS_AFTER = "rows_after"
    ALL_PHASE_DOCS_UPLOADED = "all_phase_docs_uploaded"
    SIDECAR_STATE_FINAL = "sidecar_state_final"


class Phase(enum.StrEnum):
    SOURCE_PIN = "source_pin"
    MARK = "mark"
    CUTPLAN = "cutplan"
    PRE_WRITE_BACKUP = "pre_write_backup"
    GRANT_PROBE = "grant_probe"
    CUT_LEG_A = "cut_leg_a"
    STRUCTURAL_VERIFY = "structural_verify"
    LEG_B_RECORD = "leg_b_record"
    WRITE_VERIFY = "write_verify"
    LIFECYCLE_ENACT = "lifecycle_enact"
    CLOSEOUT = "closeout"


class Gate(enum.StrEnum):
    SG_1 = "SG_1"
    SG_2 = "SG_2"


PHASES: tuple[Phase, ...] = tuple(Phase)

# The gate that stands after a phase, and the state a run waits in there.
GATE_AFTER: Mapping[Phase, Gate] = {Phase.GRANT_PROBE: Gate.SG_1, Phase.WRITE_VERIFY: Gate.SG_2}
GATE_STATE: Mapping[Gate, RunState] = {
    Gate.SG_1: RunState.AWAITING_CUT_AUTHORIZATION,
    Gate.SG_2: RunState.AWAITING_LIFECYCLE_AUTHORIZATION,
}
# Phases whose writes a dry run replays into a fresh sandbox when it resumes,
# so later phases see what the live run would have written before the pause.
SANDBOX_REPLAY: frozenset[Phase] = frozenset({Phase.CUT_LEG_A})


@dataclass(frozen=True, slots=True)
class Contract:
    requires: frozenset[Pin]
    produces: frozenset[Pin]


def _c(requires: set[Pin], produces: set[Pin]) -> Contract:
    return Contract(frozenset(requires), frozenset(produces))


CONTRACTS: Mapping[Phase, Contract] = {
    Phase.SOURCE_PIN: _c(set(), {Pin.SOURCE_VERSION_ID, Pin.SOURCE_SHA, Pin.SOURCE_SIZE}),
    Phase.MARK: _c({Pin.SOURCE_VERSION_ID, Pin.SOURCE_SHA}, {Pin.CANDIDATE_COUNT, Pin.REGION_SHA}),
    Phase.CUTPLAN: _c(
        {Pin.SOURCE_VERSION_ID, Pin.SOURCE_SHA, Pin.CANDIDATE_COUNT, Pin.REGION_SHA},
        {Pin.MANIFEST_DIGEST, Pin.IU_COUNT},
    ),
    Phase.PRE_WRITE_BACKUP: _c({Pin.MANIFEST_DIGEST}, {Pin.BACKUP_ID}),
    Phase.GRANT_PROBE: _c({Pin.MANIFEST_DIGEST}, {Pin.WRITER_DIGEST}),
    Phase.CUT_LEG_A: _c(
        {
            Pin.SOURCE_VERSION_ID,
            Pin.SOURCE_SHA,
            Pin.MANIFEST_DIGEST,
            Pin.BACKUP_ID,
            Pin.WRITER_DIGEST,
        },
        {Pin.CHANGE_SET_ID},
    ),
    Phase.STRUCTURAL_VERIFY: _c(
        {Pin.SOURCE_VERSION_ID, Pin.SOURCE_SHA, Pin.MANIFEST_DIGEST, Pin.CHANGE_SET_ID},
        {Pin.STRUCTURAL_VERIFIED},
    ),
    Phase.LEG_B_RECORD: _c({Pin.MANIFEST_DIGEST, Pin.CHANGE_SET_ID}, {Pin.MANIFEST_ENVELOPE_ID}),
    Phase.WRITE_VERIFY: _c(
        {Pin.MANIFEST_DIGEST, Pin.CHANGE_SET_ID, Pin.MANIFEST_ENVELOPE_ID}, {Pin.VERIFY_RESULT_ID}
    ),
    Phase.LIFECYCLE_ENACT: _c(
        {Pin.SOURCE_VERSION_ID, Pin.CHANGE_SET_ID, Pin.VERIFY_RESULT_ID, Pin.IU_COUNT},
        {Pin.LIFECYCLE_ENACTED, Pin.LIFECYCLE_ENACTED_COUNT, Pin.ROWS_AFTER},
    ),
    Phase.CLOSEOUT: _c(
        {Pin.CHANGE_SET_ID, Pin.LIFECYCLE_ENACTED, Pin.LIFECYCLE_ENACTED_COUNT},
        {Pin.ALL_PHASE_DOCS_UPLOADED, Pin.SIDECAR_STATE_FINAL},
    ),
}


def same_pin(a: PinValue, b: PinValue) -> bool:
    """Equal and of the same type: ``True`` is not the pin ``1``."""
    return type(a) is type(b) and a == b


def next_phase(passed: tuple[Phase, ...]) -> Phase | None:
    """The phase after those passed, or None when the walk is complete."""
    if passed != PHASES[: len(passed)]:
        raise StopContractViolated(f"phases passed out of order: {', '.join(passed)}")
    return PHASES[len(passed)] if len(passed) < len(PHASES) else None


def check_inputs(phase: Phase, pins: Mapping[Pin, PinValue]) -> None:
    missing = sorted(CONTRACTS[phase].requires - pins.keys())
    if missing:
        raise StopContractViolated(f"{phase} requires missing pins: {', '.join(missing)}")


def check_outputs(
    phase: Phase, pins: Mapping[Pin, PinValue], produced: Mapping[Pin, PinValue]
) -> None:
    contract = CONTRACTS[phase]
    missing = sorted(contract.produces - produced.keys())
    if missing:
        raise StopContractViolated(f"{phase} did not produce declared pins: {', '.join(missing)}")
    extra = sorted(produced.keys() - contract.produces)
    if extra:
        raise StopContractViolated(f"{phase} produced undeclared pins: {', '.join(extra)}")
    changed = sorted(p for p, v in produced.items() if p in pins and not same_pin(pins[p], v))
    if changed:
        raise StopContractViolated(f"{phase} would change write-once pins: {', '.join(changed)}")


def gates_due(
    passed: tuple[Phase, ...], *, satisfied: frozenset[Gate], opened: frozenset[Gate]
) -> Gate | None:
    """The gate a run must stop at before its next phase, or None to walk on.

    A gate stands after a phase; once that phase passed, the run may not go on
    until the gate was opened and satisfied. Pure: callers pass what the sidecar
    records."""
    for phase, gate in GATE_AFTER.items():
        if phase in passed and gate not in satisfied:
            if gate in opened:
                raise StopContractViolated(f"{gate} is open but not satisfied on a walking run")
            return gate
    return None
