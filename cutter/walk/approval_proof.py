"""How an approval proves its approver, and whether that is a proof the gate accepts.

A signed approval is verified against the keys the *policy* lists for its
``approver`` (``reviewer_keys``), over the payload rebuilt from the approval's own
fields (``cutter.core.signing.approval_payload``): a key the approval names, a key
written next to it, a signature made for another request, nonce, decision,
approver or time proves nothing. A signature that is present must verify, whatever
the gate accepts. An approval under ``db-approvals/`` — served only by PostgreSQL's
``db_approvals`` table, its approver the login the database stamped
(``cutter.core.db_approvals``) — proves its approver by ``"database"``. Any other unsigned
approval passes only a gate whose ``proofs`` include ``"peer"``; its proof is then
the principal the daemon authenticated when it stored it (None for one that was not
stored through the daemon). An unsigned approval the daemon stored from a review-page
link it minted (``via = "web"``, its principal the approver the link was minted for)
proves its approver by ``"web"``, and passes only a gate whose ``proofs`` list it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cutter.core.db_approvals import is_database_approval
from cutter.core.errors import (
    ApprovalSignatureInvalid,
    ApprovalSignatureRequired,
    SignatureMalformed,
)
from cutter.core.kbdocs import Approval
from cutter.core.signing import allowed_signers, approval_payload, check_signature
from cutter.runtime.sshsig import verify


@dataclass(frozen=True, slots=True)
class Proven:
    # "signature", "database", "web", "peer", or None (no proof; the gate accepts "peer")
    proof: str | None
    signer_key: str | None = None


def signed_payload(approval: Approval) -> bytes:
    """The bytes the approver must have signed for this approval."""
    return approval_payload(
        run_id=approval.run_id,
        gate=approval.gate,
        request_digest=approval.request_digest,
        nonce=approval.nonce,
        decision=approval.decision.value,
        approver=approval.approver,
        issued_at=approval.issued_at,
        review_decision_id=approval.review_decision_id,
    )


async def prove(
    approval: Approval,
    approval_kb_id: str,
    *,
    proofs: tuple[str, ...],
    reviewer_keys: dict[str, tuple[str, ...]],
) -> Proven:
    run_id = approval.run_id
    if is_database_approval(approval_kb_id):
        if "database" not in proofs or approval.principal != approval.approver:
            raise ApprovalSignatureRequired(
                run_id,
                f"approval {approval_kb_id} was stamped by the database and this gate "
                f"accepts only {' or '.join(proofs)} proofs",
            )
        return Proven("database")
    if approval.signature is None and approval.via == "web":
        if "web" not in proofs or approval.principal != approval.approver:
            raise ApprovalSignatureRequired(
                run_id,
                f"approval {approval_kb_id} was made on the review page and this gate "
                f"accepts only {' or '.join(proofs)} proofs",
            )
        return Proven("web")
    if approval.signature is None:
        if "peer" not in proofs:
            raise ApprovalSignatureRequired(
                run_id,
                f"approval {approval_kb_id} is unsigned and this gate accepts only "
                + (
                    "a reviewer's signature (cutter approve --sign-with KEY)"
                    if proofs == ("signature",)
                    else f"{' or '.join(proofs)} proofs"
                ),
            )
        return Proven("peer" if approval.principal is not None else None)
    try:
        signature = check_signature(approval.signature)
        payload = signed_payload(approval)
        allowed = allowed_signers(approval.approver, reviewer_keys)
    except SignatureMalformed as exc:
        raise ApprovalSignatureInvalid(run_id, f"approval {approval_kb_id}: {exc.message}") from exc
    verdict = await verify(payload, signature, approval.approver, allowed)
    if verdict.key is None:
        raise ApprovalSignatureInvalid(
            run_id,
            f"approval {approval_kb_id}: no policy key of {approval.approver} signed this "
            f"decision ({verdict.why})",
        )
    return Proven("signature", verdict.key)
