"""The approval rules of a sovereign gate, one row per branch (``cutter.core.approvals``
and ``cutter.walk.approval_proof``): each row takes a valid approval for a run paused at
a gate, changes one thing, and names the refusal that must follow (or the use that
must be recorded). The rules are pure; nothing here starts an actor or a store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from cutter.core.approvals import GatePolicy, check_approval, decision_kb_id
from cutter.core.errors import (
    ApprovalExpired,
    ApprovalInvalid,
    ApprovalSignatureInvalid,
    ApprovalSignatureRequired,
    ApprovalStale,
    ApprovalWrongGate,
    ApprovalWrongRun,
    ApproverNotAllowed,
    DuplicateApprover,
    GateRefusal,
    SelfApprovalRefused,
    StopApprovalRequired,
)
from cutter.core.kbdocs import Approval, Decision, request_doc_id
from cutter.core.mode import Mode
from cutter.core.route import GATE_STATE, Gate
from cutter.core.sidecar import ApprovalUse, GateRecord, Sidecar
from cutter.walk.approval_proof import prove

RUN = "run-a"
OPENED = datetime(2026, 5, 20, 9, 0, tzinfo=UTC)
NOW = OPENED + timedelta(hours=1)
KB_ID = f"approvals/{RUN}/SG_1-x"
DEFAULT = GatePolicy()  # anyone but the starter, one approval, 24 h
OPERATOR, ANN, BOB = "operator-op", "reviewer-ann", "reviewer-bob"


def gate_record(
    gate: Gate = Gate.SG_1, *, required: int = 1, approvers: tuple[str, ...] = ()
) -> GateRecord:
    uses = tuple(
        ApprovalUse(
            approval_kb_id=f"approvals/{RUN}/{gate.value}-{a}",
            approver=a,
            decision=Decision.APPROVE,
            peer=None,
            consumed_at=OPENED,
        )
        for a in approvers
    )
    return GateRecord(
        gate=gate,
        request_kb_id=request_doc_id(RUN, gate),
        request_digest="d" * 64,
        nonce="n" * 32,
        opened_at=OPENED,
        required_approvals=required,
        uses=uses,
    )


def sidecar(gate: GateRecord, mode: Mode = Mode.DRY_RUN) -> Sidecar:
    return Sidecar(
        run_id=RUN,
        doc_id="doc-1",
        mode=mode,
        started_by=OPERATOR,
        created_at=OPENED,
        updated_at=OPENED,
        state=GATE_STATE[gate.gate],
        gates=(gate,),
    )


def approval(record: GateRecord, **changes: object) -> Approval:
    """The approval that answers ``record`` exactly; ``changes`` forge fields."""
    valid = Approval(
        run_id=RUN,
        gate=record.gate,
        request_digest=record.request_digest,
        nonce=record.nonce,
        decision=Decision.APPROVE,
        approver=ANN,
        reason="read it",
        issued_at=OPENED + timedelta(minutes=10),
        review_decision_id="review-1" if record.gate is Gate.SG_2 else None,
    )
    return msgspec.structs.replace(valid, **changes)


@dataclass(frozen=True)
class Row:
    """One rule: the gate the run waits at, the approval offered, the policy; and the
    refusal expected (None: accepted)."""

    name: str
    refusal: type[GateRefusal] | None
    forge: dict[str, object] = field(default_factory=dict)
    gate: Callable[[], GateRecord] = gate_record
    policy: GatePolicy = DEFAULT
    now: datetime = NOW


ROWS = [
    Row("valid", None),
    Row("valid SG_2 with a review decision", None, gate=lambda: gate_record(Gate.SG_2)),
    Row("rejection is a valid decision", None, {"decision": Decision.REJECT}),
    Row("approver not a token", ApprovalInvalid, {"approver": "ann "}),
    Row("principal not a token", ApprovalInvalid, {"principal": "relay/1"}),
    Row("review decision id not a token", ApprovalInvalid, {"review_decision_id": "../x"}),
    Row(
        "issued_at without a timezone",
        ApprovalInvalid,
        {"issued_at": datetime(2026, 5, 20, 9, 10)},
    ),
    Row("wrong run", ApprovalWrongRun, {"run_id": "run-b"}),
    Row("wrong gate", ApprovalWrongGate, {"gate": Gate.SG_2, "review_decision_id": "r-1"}),
    Row("another request's digest", ApprovalStale, {"request_digest": "e" * 64}),
    Row("another opening's nonce", ApprovalStale, {"nonce": "m" * 32}),
    Row("issued before the gate opened", ApprovalStale, {"issued_at": OPENED - timedelta(1)}),
    Row("issued in the future", ApprovalStale, {"issued_at": NOW + timedelta(minutes=6)}),
    Row("within the clock skew allowed", None, {"issued_at": NOW + timedelta(minutes=5)}),
    Row("expired", ApprovalExpired, now=OPENED + timedelta(hours=24, minutes=11)),
    Row("at the end of its ttl", None, now=OPENED + timedelta(hours=24, minutes=10)),
    Row(
        "a shorter ttl",
        ApprovalExpired,
        policy=GatePolicy(approval_ttl=timedelta(minutes=30)),
    ),
    Row("not an approver", ApproverNotAllowed, policy=GatePolicy(approvers=(BOB,))),
    Row("a listed approver", None, policy=GatePolicy(approvers=(BOB, ANN))),
    Row("self-approval", SelfApprovalRefused, {"approver": OPERATOR}),
    Row(
        "self-approval allowed",
        None,
        {"approver": OPERATOR},
        policy=GatePolicy(allow_self_approval=True),
    ),
    Row(
        "the same approver twice",
        DuplicateApprover,
        gate=lambda: gate_record(required=2, approvers=(ANN,)),
    ),
    Row(
        "a second approver toward two",
        None,
        {"approver": BOB},
        gate=lambda: gate_record(required=2, approvers=(ANN,)),
    ),
    Row(
        "SG_2 without a review decision",
        StopApprovalRequired,
        {"review_decision_id": None},
        gate=lambda: gate_record(Gate.SG_2),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_check_approval(row: Row) -> None:
    gate = row.gate()
    offered = approval(gate, **row.forge)
    run = sidecar(gate)
    check = lambda: check_approval(  # noqa: E731
        run, gate, offered, KB_ID, now=row.now, policy=row.policy, peer="ann@host"
    )
    if row.refusal is not None:
        with pytest.raises(row.refusal) as caught:
            check()
        assert caught.type is row.refusal  # not a subclass standing in for it
        assert caught.value.run_id == RUN
        assert KB_ID in caught.value.message or offered.approver in caught.value.message
        return
    use = check()
    assert use == ApprovalUse(
        approval_kb_id=KB_ID,
        approver=offered.approver,
        decision=offered.decision,
        peer="ann@host",
        principal=offered.principal,
        consumed_at=row.now,
        review_decision_id=offered.review_decision_id,
    )


@pytest.mark.parametrize(
    ("required", "uses", "satisfied", "rejected"),
    [
        (1, [], False, False),
        (1, [(ANN, Decision.APPROVE)], True, False),
        (2, [(ANN, Decision.APPROVE)], False, False),
        (2, [(ANN, Decision.APPROVE), (BOB, Decision.APPROVE)], True, False),
        (2, [(ANN, Decision.APPROVE), (BOB, Decision.REJECT)], False, True),
        (1, [(ANN, Decision.REJECT)], False, True),
        (3, [(ANN, Decision.APPROVE), (ANN, Decision.APPROVE)], False, False),  # distinct only
    ],
)
def test_a_gate_counts_distinct_approvers_and_one_rejection_closes_it(
    required: int, uses: list[tuple[str, Decision]], satisfied: bool, rejected: bool
) -> None:
    gate = gate_record(required=required)
    gate = msgspec.structs.replace(
        gate,
        uses=tuple(
            ApprovalUse(
                approval_kb_id=f"approvals/{RUN}/SG_1-{n}",
                approver=who,
                decision=decision,
                peer=None,
                consumed_at=NOW,
            )
            for n, (who, decision) in enumerate(uses)
        ),
    )
    assert (gate.satisfied, gate.rejected) == (satisfied, rejected)


def test_decision_ids_name_the_decision_not_its_reason_or_time() -> None:
    args = (RUN, Gate.SG_1, "d" * 64, "n" * 32, ANN, Decision.APPROVE)
    kb_id = decision_kb_id(*args)
    assert kb_id.startswith(f"approvals/{RUN}/SG_1-")
    assert decision_kb_id(*args) == kb_id
    for n in range(len(args)):
        other = list(args)
        other[n] = {
            0: "run-b",
            1: Gate.SG_2,
            2: "e" * 64,
            3: "m" * 32,
            4: BOB,
            5: Decision.REJECT,
        }[n]
        assert decision_kb_id(*other) != kb_id  # type: ignore[arg-type]


def test_live_runs_take_the_live_proofs_when_the_policy_names_them() -> None:
    plain = GatePolicy(proofs=("peer",))
    strict = GatePolicy(proofs=("peer",), live_proofs=("signature",))
    assert plain.proofs_for(Mode.LIVE) == ("peer",)
    assert strict.proofs_for(Mode.LIVE) == ("signature",)
    assert strict.proofs_for(Mode.DRY_RUN) == ("peer",)


# -- proofs: peer, principal, database, web ----------------------------------------------

DB_KB_ID = "db-approvals/17"
SIGNATURE = "-----BEGIN SSH SIGNATURE-----\nnot*base64\n-----END SSH SIGNATURE-----"


@dataclass(frozen=True)
class ProofRow:
    name: str
    proofs: tuple[str, ...]
    expected: str | type[GateRefusal] | None  # the proof recorded, or the refusal
    forge: dict[str, object] = field(default_factory=dict)
    kb_id: str = KB_ID


PROOF_ROWS = [
    ProofRow("unsigned via the daemon: the peer", ("peer",), "peer", {"principal": ANN}),
    ProofRow("unsigned, not via the daemon: no proof", ("peer",), None),
    ProofRow("unsigned where a signature is required", ("signature",), ApprovalSignatureRequired),
    ProofRow("unsigned where only the database counts", ("database",), ApprovalSignatureRequired),
    ProofRow("database-stamped", ("database",), "database", {"principal": ANN}, DB_KB_ID),
    ProofRow(
        "database-stamped for someone else",
        ("database",),
        ApprovalSignatureRequired,
        {"principal": BOB},
        DB_KB_ID,
    ),
    ProofRow(
        "database-stamped at a peer gate",
        ("peer",),
        ApprovalSignatureRequired,
        {"principal": ANN},
        DB_KB_ID,
    ),
    ProofRow("review page", ("web",), "web", {"principal": ANN, "via": "web"}),
    ProofRow(
        "review page for someone else",
        ("web",),
        ApprovalSignatureRequired,
        {"principal": BOB, "via": "web"},
    ),
    ProofRow(
        "review page at a peer gate",
        ("peer",),
        ApprovalSignatureRequired,
        {"principal": ANN, "via": "web"},
    ),
    ProofRow(
        "a malformed signature, whatever the gate takes",
        ("peer",),
        ApprovalSignatureInvalid,
        {"signature": SIGNATURE},
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize("row", PROOF_ROWS, ids=lambda r: r.name)
async def test_prove(row: ProofRow) -> None:
    offered = approval(gate_record(), **row.forge)
    if isinstance(row.expected, type):
        with pytest.raises(row.expected) as caught:
            await prove(offered, row.kb_id, proofs=row.proofs, reviewer_keys={})
        assert caught.type is row.expected
        assert row.kb_id in caught.value.message
        return
    proven = await prove(offered, row.kb_id, proofs=row.proofs, reviewer_keys={})
    assert (proven.proof, proven.signer_key) == (row.expected, None)
