"""The gate, checked again where the write happens.

The gatekeeper decides at consumption; the run then records the decision in its
sidecar — a file or a ``runs`` row that anyone who can write the state can edit.
So ``cut_leg_a`` (SG_1) and ``lifecycle_enact`` (SG_2), before they write, judge
the gate again from what the sidecar cannot vouch for:

- the rule is the *policy's* (``policy/current``, or the daemon's default), never
  the sidecar's ``required_approvals``;
- the open request is the KB's request doc: its subject must hash to the digest the
  sidecar recorded, name this run, this gate and this opening (nonce), and pin what
  the run is about to write (source, manifest, IU count, writer; at SG_2 the
  verify result);
- each recorded use names an approval doc, under ``approvals/`` or ``db-approvals/``
  (``cutter.core.control_docs``: nowhere the IU writer can write on PostgreSQL), that
  approves exactly that request, by an approver the policy allows (not the starter
  unless it allows self-approval), consumed by this run according to the run store's
  consumption records, and proved as the policy's ``proofs`` require (a signature is
  verified again);
- the distinct approvers number at least the policy's ``required_approvals``.

Expiry is not judged again: the gatekeeper judged it when the approval was
consumed, and a run resumed after a crash may write later than that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from cutter.core.approvals import GatePolicy, check_well_formed
from cutter.core.control_docs import is_approval_location
from cutter.core.errors import CorruptRecord, GateRefusal, StopGateNotPassed
from cutter.core.kbdocs import Approval, Decision, SovereignRequest
from cutter.core.policy import Policy
from cutter.core.ports import Consumption, KnowledgeBase
from cutter.core.route import Gate, Pin
from cutter.core.sidecar import GateRecord, Sidecar
from cutter.walk.approval_proof import prove
from cutter.walk.policy_book import current, gate_policy


def check_passed(
    sidecar: Sidecar,
    gate: Gate,
    *,
    rule: GatePolicy,
    request: object,
    approvals: dict[str, object],
    consumed: dict[str, str | None],
) -> tuple[tuple[str, Approval], ...]:
    """Pure: the approvals that pass ``gate`` of this run under ``rule``, judged from the
    request doc and the approval docs as the KB holds them (``request``, ``approvals``
    by kb_id; anything not an ``Approval`` is a forgery or damage) and the run that
    consumed each (``consumed``). Raises ``StopGateNotPassed``. What remains to check
    is each approval's proof (``prove``, asynchronous)."""
    run_id = sidecar.run_id
    record = sidecar.gate(gate)
    if record is None:
        _fail(sidecar, gate, "the run recorded no request for it")
    _check_request(sidecar, record, request)
    if not isinstance(request, SovereignRequest):  # _check_request refused it; for mypy
        _fail(sidecar, gate, "no request doc")
    passing: list[tuple[str, Approval]] = []
    for use in record.uses:
        kb_id = use.approval_kb_id
        if not is_approval_location(kb_id):
            _fail(sidecar, gate, f"approval {kb_id} is not under approvals/ or db-approvals/")
        approval = approvals.get(kb_id)
        if not isinstance(approval, Approval):
            _fail(sidecar, gate, f"approval {kb_id} is not an approval in the KB")
        try:
            check_well_formed(run_id, approval, kb_id)
        except GateRefusal as exc:
            _fail(sidecar, gate, exc.message)
        if (
            approval.run_id != run_id
            or approval.gate is not gate
            or approval.request_digest != record.request_digest
            or approval.nonce != record.nonce
        ):
            _fail(sidecar, gate, f"approval {kb_id} does not answer this run's open request")
        if approval.approver != use.approver or approval.decision is not use.decision:
            _fail(sidecar, gate, f"approval {kb_id} is not the decision the run recorded")
        if approval.decision is not Decision.APPROVE:
            _fail(sidecar, gate, f"approval {kb_id} rejects the request")
        if "*" not in rule.approvers and approval.approver not in rule.approvers:
            _fail(sidecar, gate, f"{approval.approver} is not an approver of it by the policy")
        if approval.approver == request.subject.started_by and not rule.allow_self_approval:
            _fail(sidecar, gate, f"{approval.approver} started the run and may not approve it")
        if gate is Gate.SG_2 and approval.review_decision_id is None:
            _fail(sidecar, gate, f"approval {kb_id} carries no review_decision_id")
        if consumed.get(kb_id) != run_id:
            _fail(sidecar, gate, f"approval {kb_id} was not consumed by this run")
        passing.append((kb_id, approval))
    distinct = {a.approver for _, a in passing}
    if len(distinct) < rule.required_approvals:
        _fail(
            sidecar,
            gate,
            f"the policy requires {rule.required_approvals} distinct approvers, "
            f"the run has {len(distinct)}",
        )
    return tuple(passing)


def _check_request(sidecar: Sidecar, record: GateRecord, request: object) -> None:
    why = request_mismatch(sidecar, record, request)
    if why is not None:
        _fail(sidecar, record.gate, why)


def request_mismatch(sidecar: Sidecar, record: GateRecord, request: object) -> str | None:
    """Pure: why ``request`` (the gate's request doc as the KB holds it; None when
    absent or unreadable) is not the request the run recorded at ``record``, or None
    when it is: its subject hashes to the recorded digest and names this run, gate,
    nonce and the run's pins. The gatekeeper asks before it takes an approval, a
    phase that writes before it writes."""
    gate = record.gate
    if not isinstance(request, SovereignRequest):
        return f"no request doc at {record.request_kb_id}"
    subject = request.subject
    pins = sidecar.pins
    verify_result = pins.get(Pin.VERIFY_RESULT_ID) if gate is Gate.SG_2 else None
    if (
        subject.request_digest != record.request_digest
        or request.request_digest != record.request_digest
        or request.run_id != sidecar.run_id
        or subject.run_id != sidecar.run_id
        or subject.gate is not gate
        or subject.doc_id != sidecar.doc_id
        or subject.mode is not sidecar.mode
        or subject.nonce != record.nonce
        or subject.opened_at != record.opened_at
    ):
        return f"the request at {record.request_kb_id} is not the one recorded"
    if (
        subject.source_version_id != pins.get(Pin.SOURCE_VERSION_ID)
        or subject.source_sha != pins.get(Pin.SOURCE_SHA)
        or subject.manifest_digest != pins.get(Pin.MANIFEST_DIGEST)
        or str(subject.iu_count) != str(pins.get(Pin.IU_COUNT))
        or subject.writer_digest != pins.get(Pin.WRITER_DIGEST)
        or (gate is Gate.SG_2 and subject.verify_result_id != verify_result)
    ):
        return "the run's pins are not those the approved request names"
    return None


def request_damage(sidecar: Sidecar, record: GateRecord, request: object) -> str | None:
    """``request_mismatch``, and the approvals the request doc says it needs must be
    those the run recorded: why the gatekeeper refuses to take an approval for this
    request (``GATE_REQUEST_DAMAGED``), or None."""
    why = request_mismatch(sidecar, record, request)
    if why is not None:
        return why
    if isinstance(request, SovereignRequest) and (
        request.required_approvals != record.required_approvals
    ):
        return f"the request at {record.request_kb_id} is not the one recorded"
    return None


def _fail(sidecar: Sidecar, gate: Gate, why: str) -> NoReturn:
    raise StopGateNotPassed(f"{gate} is not passed as the policy requires: {why}")


@dataclass(frozen=True, slots=True)
class PolicyGateVerifier:
    """The ``GateVerifier`` of a run: the policy and approvals from the KB, the
    consumption records from the run store (only ``consumed_by`` of it), and the
    daemon's default policy for a KB that stores none."""

    kb: KnowledgeBase
    consumption: Consumption
    fallback: Policy

    async def verify(self, sidecar: Sidecar, gate: Gate) -> None:
        record = sidecar.gate(gate)
        try:
            policy = (await current(self.kb, self.fallback)).policy
        except CorruptRecord as exc:
            raise StopGateNotPassed(f"the policy cannot be read: {exc.message}") from exc
        rule = gate_policy(policy, sidecar.doc_id, gate)
        request = None if record is None else await self._doc(record.request_kb_id)
        approvals: dict[str, object] = {}
        consumed: dict[str, str | None] = {}
        for use in () if record is None else record.uses:
            kb_id = use.approval_kb_id
            approvals[kb_id] = await self._doc(kb_id)
            try:
                consumed[kb_id] = await self.consumption.consumed_by(kb_id)
            except CorruptRecord:
                consumed[kb_id] = None  # cannot be known: fail closed
        passing = check_passed(
            sidecar, gate, rule=rule, request=request, approvals=approvals, consumed=consumed
        )
        for kb_id, approval in passing:
            try:
                await prove(
                    approval,
                    kb_id,
                    proofs=rule.proofs_for(sidecar.mode),
                    reviewer_keys=policy.reviewer_keys,
                )
            except GateRefusal as exc:
                _fail(sidecar, gate, exc.message)

    async def _doc(self, kb_id: str) -> object:
        try:
            return await self.kb.get(kb_id)
        except (KeyError, CorruptRecord):
            return None
