"""The gatekeeper: opens sovereign gates, and alone decides whether an approval
releases one — validation, drift comparison, exactly-once consumption."""

from __future__ import annotations

from typing import Any, assert_never

import msgspec

from actors import Actor, Context
from cutter.core.approvals import GatePolicy, check_approval
from cutter.core.control_docs import is_approval_location
from cutter.core.drift import compare
from cutter.core.errors import (
    ApprovalConsumedAlready,
    ApprovalInvalid,
    ApprovalNotFound,
    ApprovalRecoveryPending,
    CorruptRecord,
    GateRefusal,
    GateRequestDamaged,
    PolicyUnreadable,
    Refusal,
    RunChanged,
    StopApprovalRequired,
    StopCode,
    new_error_id,
)
from cutter.core.ids import new_nonce
from cutter.core.kbdocs import (
    Approval,
    ApprovalRefusal,
    Decision,
    RequestSubject,
    SovereignRequest,
    refusal_doc_id,
    request_doc_id,
)
from cutter.core.policy import Policy
from cutter.core.route import GATE_STATE, Gate, Pin
from cutter.core.sidecar import GateRecord, Sidecar, StopInfo, replace_gate
from cutter.core.states import RunState
from cutter.core.transitions import (
    ClosedGate,
    ConsumedApproval,
    DetectedDrift,
    OpenedGate,
    RefusedApproval,
)
from cutter.walk.approval_proof import prove
from cutter.walk.gate_check import request_damage
from cutter.walk.messages import (
    ApprovalConsumed,
    ApprovalRefused,
    ConsumeApproval,
    DriftDetected,
    GatekeeperCommand,
    GatekeeperReply,
    GateOpened,
    OpenGate,
)
from cutter.walk.observe import name_units, observe
from cutter.walk.phases import Services
from cutter.walk.policy_book import current, default_policy, gate_policy
from cutter.walk.recorder import RunRecorder


class Gatekeeper(Actor[GatekeeperCommand, GatekeeperReply]):
    def __init__(self, services: Services, recorder: RunRecorder, policy: GatePolicy) -> None:
        self.services = services
        self.recorder = recorder
        self.policy = policy  # the daemon's options: the rule while no policy is stored
        self.fallback = default_policy(policy, owner="-")

    async def _policy(self, sidecar: Sidecar) -> Policy:
        """The stored policy, read now."""
        try:
            stored = await current(self.services.kb, self.fallback)
        except CorruptRecord as exc:
            raise PolicyUnreadable(sidecar.run_id, exc.message) from exc
        return stored.policy

    async def _rule(self, sidecar: Sidecar, gate: Gate) -> GatePolicy:
        """The stored policy's rule for this gate of this document, read now."""
        return gate_policy(await self._policy(sidecar), sidecar.doc_id, gate)

    async def receive(self, message: GatekeeperCommand, ctx: Context) -> GatekeeperReply:
        match message:
            case OpenGate():
                return await self._open(message)
            case ConsumeApproval():
                return await self._consume(message, ctx)
            case _:
                assert_never(message)

    async def _open(self, message: OpenGate) -> GateOpened:
        sidecar, gate = message.sidecar, message.gate
        pins = sidecar.pins
        subject = RequestSubject(
            run_id=sidecar.run_id,
            gate=gate,
            mode=sidecar.mode,
            doc_id=sidecar.doc_id,
            started_by=sidecar.started_by,
            source_version_id=str(pins[Pin.SOURCE_VERSION_ID]),
            source_sha=str(pins[Pin.SOURCE_SHA]),
            manifest_digest=str(pins[Pin.MANIFEST_DIGEST]),
            iu_count=int(pins[Pin.IU_COUNT]),
            writer_digest=str(pins[Pin.WRITER_DIGEST]),
            verify_result_id=str(pins[Pin.VERIFY_RESULT_ID]) if gate is Gate.SG_2 else None,
            nonce=new_nonce(),
            opened_at=self.services.clock(),
        )
        kb_id = request_doc_id(sidecar.run_id, gate)
        digest = subject.request_digest
        rule = await self._rule(sidecar, gate)
        await self.services.kb.put(
            kb_id,
            SovereignRequest(
                run_id=sidecar.run_id,
                subject=subject,
                request_digest=digest,
                required_approvals=rule.required_approvals,
            ),
        )
        record = GateRecord(
            gate=gate,
            request_kb_id=kb_id,
            request_digest=digest,
            nonce=subject.nonce,
            opened_at=subject.opened_at,
            required_approvals=rule.required_approvals,
        )
        after = await self.recorder.move(
            sidecar,
            GATE_STATE[gate],
            stop=StopInfo(code=StopCode.APPROVAL_REQUIRED, message=f"waiting for {gate} approval"),
            gates=(*sidecar.gates, record),
        )
        self.recorder.announce(
            after, OpenedGate(gate=gate, request_kb_id=kb_id, request_digest=digest)
        )
        return GateOpened(sidecar=after)

    async def _consume(self, message: ConsumeApproval, ctx: Context) -> GatekeeperReply:
        sidecar, gate, kb_id = message.sidecar, message.gate, message.approval_kb_id
        try:
            if kb_id is None:
                raise StopApprovalRequired(sidecar.run_id, f"{gate.gate} needs an approval kb_id")
            await self._check_request(sidecar, gate)
            approval = await self._load_approval(sidecar.run_id, kb_id)
            recovering = await self._check_unconsumed(sidecar, gate, kb_id)
            policy = await self._policy(sidecar)
            rule = gate_policy(policy, sidecar.doc_id, gate.gate)
            use = check_approval(
                sidecar,
                gate,
                approval,
                kb_id,
                now=self.services.clock(),
                policy=rule,
                peer=message.peer,
            )
            proven = await prove(
                approval,
                kb_id,
                proofs=rule.proofs_for(sidecar.mode),
                reviewer_keys=policy.reviewer_keys,
            )
            use = msgspec.structs.replace(use, proof=proven.proof, signer_key=proven.signer_key)
        except GateRefusal as exc:
            return await self._refuse(sidecar, gate.gate, kb_id, exc, message.peer)
        if use.decision is Decision.APPROVE:
            drift = compare(sidecar.pins, await observe(self.services, sidecar, gate.gate))
            if drift:
                drift = await name_units(self.services, sidecar, drift)
                self.recorder.announce(
                    sidecar, DetectedDrift(gate=gate.gate, approval_kb_id=kb_id, drift=drift)
                )
                return DriftDetected(items=drift)
        advanced = msgspec.structs.replace(gate, uses=(*gate.uses, use))
        changes: dict[str, Any] = {"gates": replace_gate(sidecar, advanced)}
        target = RunState.RUNNING if advanced.satisfied else None
        if target is not None:
            changes["stop"] = None
        try:
            if recovering:
                after = (
                    await self.recorder.move(sidecar, target, **changes)
                    if target
                    else await self.recorder.amend(sidecar, **changes)
                )
            else:
                after = await self.recorder.consume(sidecar, use, target, **changes)
        except ApprovalConsumedAlready as exc:
            return await self._refuse(sidecar, gate.gate, kb_id, exc, message.peer)
        except RunChanged as exc:
            # Another resumer moved the run first; if it used this very approval,
            # that is the precise answer.
            raced: Refusal = exc
            if await self.recorder.store.consumed_by(kb_id) is not None:
                raced = ApprovalConsumedAlready(sidecar.run_id, kb_id)
            return await self._refuse(sidecar, gate.gate, kb_id, raced, message.peer)
        self.recorder.announce(
            after,
            ConsumedApproval(
                gate=gate.gate,
                approval_kb_id=kb_id,
                approver=use.approver,
                principal=use.principal,
                peer=use.peer,
                proof=use.proof,
                signer_key=use.signer_key,
                decision=use.decision,
                recovered=recovering,
            ),
        )
        if advanced.satisfied or advanced.rejected:
            self.recorder.announce(after, ClosedGate(gate=gate.gate, decision=use.decision))
        return ApprovalConsumed(sidecar=after)

    async def _check_request(self, sidecar: Sidecar, gate: GateRecord) -> None:
        """Refuse (``GateRequestDamaged``) unless the stored request doc is the request
        the run recorded: read now and rehashed, never trusted for being there. An
        approval answers the digest in the run's record; without this, a damaged or
        replaced request doc (what a reviewer is shown) would be approved unseen."""
        try:
            request: object = await self.services.kb.get(gate.request_kb_id)
        except KeyError:
            request = None
        except CorruptRecord as exc:
            raise GateRequestDamaged(
                sidecar.run_id, f"the request doc of {gate.gate} cannot be read: {exc.message}"
            ) from exc
        why = request_damage(sidecar, gate, request)
        if why is not None:
            raise GateRequestDamaged(sidecar.run_id, why)

    async def _load_approval(self, run_id: str, kb_id: str) -> Approval:
        if not is_approval_location(kb_id):
            # Anywhere else the IU writer can write: nothing there proves an approver.
            raise ApprovalNotFound(
                run_id, f"{kb_id} is not under approvals/ or db-approvals/, where approvals are"
            )
        try:
            doc = await self.services.kb.get(kb_id)
        except KeyError:
            raise ApprovalNotFound(run_id, f"no approval at {kb_id}") from None
        except CorruptRecord as exc:
            raise ApprovalInvalid(
                run_id, f"approval {kb_id} cannot be read: {exc.message}"
            ) from exc
        if not isinstance(doc, Approval):
            raise ApprovalNotFound(run_id, f"{kb_id} is a {type(doc).__name__}, not an approval")
        return doc

    async def _check_unconsumed(self, sidecar: Sidecar, gate: GateRecord, kb_id: str) -> bool:
        """Refuse a consumed approval; True when this run consumed it but crashed
        before recording the advance (the consumption is then completed, not repeated)."""
        try:
            holder = await self.recorder.store.consumed_by(kb_id)
        except CorruptRecord as exc:
            # Whether it was consumed cannot be known: fail closed.
            raise ApprovalInvalid(
                sidecar.run_id, f"consumption record of {kb_id} is unreadable: {exc.message}"
            ) from exc
        if holder is None:
            await self._no_consumption_pending(sidecar, kb_id)
            return False
        if holder == sidecar.run_id and kb_id not in sidecar.approvals_used:
            # Crash between the journal record and the sidecar — or a second resumer
            # holding a stale sidecar. Only the stored sidecar can tell them apart.
            stored = await self.recorder.store.load(sidecar.run_id)
            if stored == sidecar:
                return True
        raise ApprovalConsumedAlready(sidecar.run_id, kb_id)

    async def _no_consumption_pending(self, sidecar: Sidecar, kb_id: str) -> None:
        """Refuse a new approval while another one this run consumed is not recorded in
        the stored run (a crash between consumption and save): that one is finished
        first. Judged against the stored run, not this walk's copy: a concurrent
        resumer that just consumed (``kb_id`` itself, or another approval, now
        recorded) is a race the save refuses, not a consumption to recover."""
        store = self.recorder.store
        unrecorded = [
            k for k in await store.consumed_for(sidecar.run_id) if k not in sidecar.approvals_used
        ]
        if not unrecorded:
            return
        if kb_id in unrecorded:
            raise ApprovalConsumedAlready(sidecar.run_id, kb_id)
        stored = await store.load(sidecar.run_id)
        for pending in unrecorded:
            if pending not in stored.approvals_used:
                raise ApprovalRecoveryPending(
                    sidecar.run_id,
                    f"approval {pending} was consumed by this run before a crash and is "
                    "not yet recorded: resume with it (a daemon does at start-up) first",
                )

    async def _refuse(
        self,
        sidecar: Sidecar,
        gate: Gate,
        kb_id: str | None,
        exc: Refusal,
        peer: str | None,
    ) -> ApprovalRefused:
        error_id = new_error_id()
        safe_id = kb_id
        await self.services.kb.put(
            refusal_doc_id(sidecar.run_id, error_id),
            ApprovalRefusal(
                run_id=sidecar.run_id,
                gate=gate,
                approval_kb_id=safe_id,
                code=exc.code,
                message=exc.message,
                peer=peer,
                at=self.services.clock(),
            ),
        )
        self.recorder.announce(
            sidecar,
            RefusedApproval(
                gate=gate,
                approval_kb_id=safe_id,
                code=exc.code,
                reason=exc.message,
                error_id=error_id,
            ),
        )
        return ApprovalRefused(refusal=exc.info(approval_kb_id=safe_id))
