"""The messages the run's actors exchange: one closed tagged union per mailbox.

Commands are imperative (``Walk``, ``RunPhase``, ``OpenGate``, ``ConsumeApproval``),
replies and events past tense (``PhasePassed``, ``ApprovalConsumed``, ``DriftDetected``).
"""

from __future__ import annotations

import msgspec

from actors import Request
from cutter.core.errors import ErrorCode, RefusalInfo, StopCode
from cutter.core.route import Gate, Phase, Pin, PinValue
from cutter.core.sidecar import DriftItem, GateRecord, Sidecar


class Message(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    pass


# --- run supervisor ---------------------------------------------------------
class Walk(Message, Request["SupervisorReply"], frozen=True, kw_only=True, tag="walk"):
    """Walk the run from where it stands to its next stop, using an approval if at a gate."""

    approval_kb_id: str | None = None
    peer: str | None = None


class Abort(Message, Request["SupervisorReply"], frozen=True, kw_only=True, tag="abort"):
    """End the run ABORTED: a paused run at once, a walking one at its next phase boundary."""

    reason: str
    by: str


class Drain(Message, frozen=True, kw_only=True, tag="drain"):
    """Pause the walk at its next phase boundary (still RUNNING: the next runner
    continues it), and any later walk of this supervisor before its first phase. Told."""


SupervisorCommand = Walk | Abort | Drain


class WalkStopped(Message, frozen=True, kw_only=True, tag="walk_stopped"):
    sidecar: Sidecar


class Refused(Message, frozen=True, kw_only=True, tag="refused"):
    """The command was refused; the run is unchanged. The runner raises the
    registered class of ``refusal.code`` (``cutter.core.errors.raise_refusal``)."""

    refusal: RefusalInfo


def refused(code: ErrorCode, message: str, approval_kb_id: str | None = None) -> Refused:
    return Refused(refusal=RefusalInfo(code=code, message=message, approval_kb_id=approval_kb_id))


SupervisorReply = WalkStopped | Refused


# --- phase actors -----------------------------------------------------------
class RunPhase(Message, Request["PhaseReply"], frozen=True, kw_only=True, tag="run_phase"):
    sidecar: Sidecar
    replay: bool = False  # re-apply a dry run's writes into a fresh sandbox; no phase doc


class PhasePassed(Message, frozen=True, kw_only=True, tag="phase_passed"):
    phase: Phase
    pins: dict[Pin, PinValue]
    kb_id: str | None


class PhaseFailed(Message, frozen=True, kw_only=True, tag="phase_failed"):
    phase: Phase
    code: StopCode
    message: str
    error_id: str


PhaseReply = PhasePassed | PhaseFailed


# --- gatekeeper -------------------------------------------------------------
class OpenGate(Message, Request["GateOpened"], frozen=True, kw_only=True, tag="open_gate"):
    sidecar: Sidecar
    gate: Gate


class ConsumeApproval(
    Message,
    Request["ApprovalConsumed | ApprovalRefused | DriftDetected"],
    frozen=True,
    kw_only=True,
    tag="consume_approval",
):
    """Use the approval at ``gate``, the gate ``sidecar`` waits at (``Sidecar.pending_gate``)."""

    sidecar: Sidecar
    gate: GateRecord
    approval_kb_id: str | None
    peer: str | None = None


GatekeeperCommand = OpenGate | ConsumeApproval


class GateOpened(Message, frozen=True, kw_only=True, tag="gate_opened"):
    sidecar: Sidecar


class ApprovalConsumed(Message, frozen=True, kw_only=True, tag="approval_consumed"):
    sidecar: Sidecar


class ApprovalRefused(Message, frozen=True, kw_only=True, tag="approval_refused"):
    """The approval does not release the gate; passed on as it is (``Refused``)."""

    refusal: RefusalInfo


class DriftDetected(Message, frozen=True, kw_only=True, tag="drift_detected"):
    items: tuple[DriftItem, ...]


GatekeeperReply = GateOpened | ApprovalConsumed | ApprovalRefused | DriftDetected
