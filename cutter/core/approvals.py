"""The approval rules of a sovereign gate (pure): is this approval valid for this
pause? Raises the ``GateRefusal`` that says why not; returns the use to record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cutter.core.canonical import sha256_hex
from cutter.core.errors import (
    ApprovalExpired,
    ApprovalInvalid,
    ApprovalStale,
    ApprovalWrongGate,
    ApprovalWrongRun,
    ApproverNotAllowed,
    DuplicateApprover,
    InvalidIdentifier,
    SelfApprovalRefused,
    StopApprovalRequired,
)
from cutter.core.ids import check_token
from cutter.core.kbdocs import Approval, Decision
from cutter.core.mode import Mode
from cutter.core.route import Gate
from cutter.core.sidecar import ApprovalUse, GateRecord, Sidecar


def decision_kb_id(
    run_id: str,
    gate: Gate,
    request_digest: str,
    nonce: str,
    approver: str,
    decision: Decision,
) -> str:
    """Where a reviewer's decision is stored: named by what makes it that decision —
    this approver's approve or reject of this run's request (its digest and the nonce
    of this opening of the gate). A retry of the same decision (the connection
    dropped, the daemon restarted) names the same approval, so it is consumed at
    most once; reason and time are not part of the name."""
    key = "\x00".join((run_id, gate.value, request_digest, nonce, approver, decision.value))
    return f"approvals/{run_id}/{gate.value}-{sha256_hex(key.encode())[:24]}"


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """One gate's rule for one document, resolved from the policy (``cutter.core.policy``):
    who may approve ("*": anyone), how many distinct approvers, how long an approval
    is good. ``approver`` and ``started_by`` are the acting names the daemon checked
    against the authenticated principals (``cutter.core.principals``)."""

    approval_ttl: timedelta = timedelta(hours=24)
    allow_self_approval: bool = False
    required_approvals: int = 1
    approvers: tuple[str, ...] = ("*",)
    proofs: tuple[str, ...] = ("peer",)  # which proofs of an approver the gate accepts
    live_proofs: tuple[str, ...] | None = None  # instead, for a LIVE run; None: proofs

    def proofs_for(self, mode: Mode) -> tuple[str, ...]:
        if mode is Mode.LIVE and self.live_proofs is not None:
            return self.live_proofs
        return self.proofs


def check_approval(
    sidecar: Sidecar,
    gate: GateRecord,
    approval: Approval,
    approval_kb_id: str,
    *,
    now: datetime,
    policy: GatePolicy,
    peer: str | None,
) -> ApprovalUse:
    run_id = sidecar.run_id
    check_well_formed(run_id, approval, approval_kb_id)
    if approval.run_id != run_id:
        raise ApprovalWrongRun(run_id, f"approval {approval_kb_id} is for run {approval.run_id}")
    if approval.gate is not gate.gate:
        raise ApprovalWrongGate(
            run_id, f"approval {approval_kb_id} is for {approval.gate}, run waits at {gate.gate}"
        )
    if approval.request_digest != gate.request_digest or approval.nonce != gate.nonce:
        raise ApprovalStale(
            run_id, f"approval {approval_kb_id} answers another request than the one open"
        )
    if approval.issued_at < gate.opened_at:
        raise ApprovalStale(run_id, f"approval {approval_kb_id} was issued before the gate opened")
    if approval.issued_at > now + timedelta(minutes=5):
        raise ApprovalStale(run_id, f"approval {approval_kb_id} is issued in the future")
    if now - approval.issued_at > policy.approval_ttl:
        raise ApprovalExpired(
            run_id, f"approval {approval_kb_id} expired (ttl {policy.approval_ttl})"
        )
    if "*" not in policy.approvers and approval.approver not in policy.approvers:
        raise ApproverNotAllowed(
            run_id, f"{approval.approver} is not an approver of {gate.gate} for {sidecar.doc_id}"
        )
    if approval.approver == sidecar.started_by and not policy.allow_self_approval:
        raise SelfApprovalRefused(
            run_id, f"{approval.approver} started this run and may not approve it"
        )
    if approval.approver in gate.approvers:
        raise DuplicateApprover(run_id, f"{approval.approver} already approved this gate")
    if gate.gate is Gate.SG_2 and approval.review_decision_id is None:
        raise StopApprovalRequired(
            run_id, f"SG_2 approval {approval_kb_id} carries no review_decision_id"
        )
    return ApprovalUse(
        approval_kb_id=approval_kb_id,
        approver=approval.approver,
        decision=approval.decision,
        peer=peer,
        principal=approval.principal,
        consumed_at=now,
        review_decision_id=approval.review_decision_id,
    )


def check_well_formed(run_id: str, approval: Approval, approval_kb_id: str) -> None:
    """Approvals come from outside: every field the rules compare must be well formed,
    or ``"ann "`` would slip past the self-approval rule as someone else."""
    try:
        check_token("approver", approval.approver)
        if approval.principal is not None:
            check_token("principal", approval.principal)
        if approval.review_decision_id is not None:
            check_token("review_decision_id", approval.review_decision_id)
    except InvalidIdentifier as exc:
        raise ApprovalInvalid(run_id, f"approval {approval_kb_id}: {exc.message}") from exc
    if approval.issued_at.utcoffset() is None:
        raise ApprovalInvalid(run_id, f"approval {approval_kb_id}: issued_at has no timezone")
