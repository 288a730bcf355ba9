"""The run context: the sidecar as stored (encode / decode_sidecar) and the
properties the runner and the gatekeeper read from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from cutter.core import codec
from cutter.core.errors import CorruptRecord, StopCode
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.route import Gate, Phase, Pin, PinValue
from cutter.core.sidecar import ApprovalUse, DriftItem, GateRecord, Sidecar, StopInfo
from cutter.core.states import RunState
from tests._harness import DOC_ID, OPERATOR, REVIEWER, REVIEWER_2, SV_ID

T0 = datetime(2026, 5, 20, 9, 0, tzinfo=UTC)
LOCATION = "state/runs/run-context.json"

PINS: dict[Pin, PinValue] = {
    Pin.SOURCE_VERSION_ID: SV_ID,
    Pin.SOURCE_SHA: "ab" * 32,
    Pin.SOURCE_SIZE: 978,
    Pin.CANDIDATE_COUNT: 12,
    Pin.IU_COUNT: 1,
    Pin.STRUCTURAL_VERIFIED: True,
    Pin.LIFECYCLE_ENACTED: False,
    Pin.LIFECYCLE_ENACTED_COUNT: 0,
    Pin.CHANGE_SET_ID: "12",
    Pin.SIDECAR_STATE_FINAL: "true",
}


def gate_record(gate: Gate, *uses: ApprovalUse, required: int = 1) -> GateRecord:
    return GateRecord(
        gate=gate,
        request_kb_id=f"runs/run-context/gates/{gate.value}/request",
        request_digest="cd" * 32,
        nonce="ef" * 16,
        opened_at=T0 + timedelta(minutes=1),
        required_approvals=required,
        uses=uses,
    )


def use(approver: str = REVIEWER, decision: Decision = Decision.APPROVE, n: int = 1) -> ApprovalUse:
    return ApprovalUse(
        approval_kb_id=f"approvals/run-context/{approver}-{n}",
        approver=approver,
        decision=decision,
        peer="uid=1000" if n % 2 else None,
        consumed_at=T0 + timedelta(minutes=2, seconds=n),
        review_decision_id=f"review-{n}" if decision is Decision.APPROVE else None,
    )


def sidecar(**changes: Any) -> Sidecar:
    base = Sidecar(
        run_id="run-context",
        doc_id=DOC_ID,
        mode=Mode.DRY_RUN,
        started_by=OPERATOR,
        created_at=T0,
        updated_at=T0,
        state=RunState.RUNNING,
    )
    return msgspec.structs.replace(base, **changes)


def full_sidecar() -> Sidecar:
    """Every field set to something other than its default."""
    return sidecar(
        mode=Mode.LIVE,
        batch_id="batch-7",
        updated_at=T0 + timedelta(hours=1, microseconds=250),
        state=RunState.AWAITING_LIFECYCLE_AUTHORIZATION,
        stop=StopInfo(code=StopCode.APPROVAL_REQUIRED, message="waiting", error_id="e1"),
        phases_passed=tuple(Phase)[:9],
        pins=dict(PINS),
        phase_docs={p: f"runs/run-context/phases/{i:02d}-{p}" for i, p in enumerate(Phase, 1)},
        gates=(
            gate_record(Gate.SG_1, use(n=1)),
            gate_record(Gate.SG_2, use(REVIEWER_2, n=2), required=2),
        ),
        drift=(DriftItem(pin="source_sha", before="a", after="b"),),
    )


def reencoded(value: Sidecar, edit: Any) -> bytes:
    """The stored JSON of ``value`` after ``edit`` changed its parsed form."""
    doc = json.loads(codec.encode(value))
    edit(doc)
    return json.dumps(doc).encode()


class TestRoundTrip:
    def test_a_full_sidecar_round_trips(self) -> None:
        original = full_sidecar()
        assert codec.decode_sidecar(codec.encode(original), LOCATION) == original

    def test_a_fresh_sidecar_round_trips_with_its_defaults(self) -> None:
        original = sidecar(state=RunState.CREATED)
        decoded = codec.decode_sidecar(codec.encode(original), LOCATION)
        assert decoded == original
        assert (decoded.pins, decoded.phase_docs, decoded.gates) == ({}, {}, ())
        assert decoded.schema == 1

    def test_the_encoding_is_stable(self) -> None:
        once = codec.encode(full_sidecar())
        assert codec.encode(codec.decode_sidecar(once, LOCATION)) == once

    def test_pins_keep_their_types(self) -> None:
        decoded = codec.decode_sidecar(codec.encode(full_sidecar()), LOCATION)
        # Compare types explicitly: True == 1 and 0 == False in Python.
        assert {p: type(v) for p, v in decoded.pins.items()} == {
            p: type(v) for p, v in PINS.items()
        }
        assert decoded.pins[Pin.STRUCTURAL_VERIFIED] is True
        assert decoded.pins[Pin.LIFECYCLE_ENACTED] is False
        assert type(decoded.pins[Pin.IU_COUNT]) is int
        assert decoded.pins[Pin.CHANGE_SET_ID] == "12"
        assert decoded.pins[Pin.SIDECAR_STATE_FINAL] == "true"
        assert all(type(p) is Pin for p in decoded.pins)

    def test_enums_and_times_come_back_typed(self) -> None:
        decoded = codec.decode_sidecar(codec.encode(full_sidecar()), LOCATION)
        assert decoded.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert decoded.mode is Mode.LIVE
        assert decoded.stop is not None
        assert decoded.stop.code is StopCode.APPROVAL_REQUIRED
        assert all(type(p) is Phase for p in decoded.phases_passed)
        assert decoded.gates[0].uses[0].decision is Decision.APPROVE
        assert decoded.updated_at == T0 + timedelta(hours=1, microseconds=250)
        assert decoded.updated_at.utcoffset() == timedelta(0)


class TestCorruptSidecar:
    @pytest.mark.parametrize(
        ("edit", "where"),
        [
            pytest.param(lambda d: d.update(owner="mallory"), "`owner`", id="top-level"),
            pytest.param(lambda d: d["stop"].update(trace="x"), "$.stop", id="in-stop"),
            pytest.param(
                lambda d: d["gates"][1]["uses"][0].update(admin=True),
                "$.gates[1].uses[0]",
                id="in-an-approval-use",
            ),
            pytest.param(lambda d: d["drift"][0].update(note=""), "$.drift[0]", id="in-drift"),
        ],
    )
    def test_an_unknown_field_is_corrupt_naming_where(self, edit: Any, where: str) -> None:
        data = reencoded(full_sidecar(), edit)
        with pytest.raises(CorruptRecord, match="unknown field") as caught:
            codec.decode_sidecar(data, LOCATION)
        assert caught.value.location == LOCATION
        assert LOCATION in caught.value.message
        assert where in caught.value.message

    @pytest.mark.parametrize(
        ("edit", "where"),
        [
            pytest.param(lambda d: d.update(state=5), "$.state", id="state-int"),
            pytest.param(lambda d: d.update(state="DONE"), "$.state", id="state-unknown"),
            pytest.param(lambda d: d.update(mode="live"), "$.mode", id="mode"),
            pytest.param(lambda d: d.update(created_at="yesterday"), "$.created_at", id="time"),
            pytest.param(lambda d: d.update(schema="1"), "$.schema", id="schema"),
            pytest.param(
                lambda d: d.update(phases_passed=["nap"]), "$.phases_passed[0]", id="phase"
            ),
            pytest.param(lambda d: d["pins"].update(iu_count=1.5), "$.pins[...]", id="pin-float"),
            pytest.param(lambda d: d["pins"].update(iu_count=[12]), "$.pins[...]", id="pin-list"),
            pytest.param(lambda d: d["pins"].update(bogus=1), "in `$.pins`", id="pin-unknown"),
            pytest.param(lambda d: d["gates"][0].update(gate="SG_3"), "$.gates[0].gate", id="gate"),
            pytest.param(lambda d: d.pop("run_id"), "run_id", id="missing-run-id"),
        ],
    )
    def test_a_wrong_type_is_corrupt_naming_where(self, edit: Any, where: str) -> None:
        data = reencoded(full_sidecar(), edit)
        with pytest.raises(CorruptRecord) as caught:
            codec.decode_sidecar(data, LOCATION)
        assert caught.value.location == LOCATION
        assert where in caught.value.message
        assert "\n" not in caught.value.message

    @pytest.mark.parametrize("data", [b"", b"{", b"[]", b"null", b"\xff\xfe"])
    def test_bytes_that_are_no_sidecar_are_corrupt(self, data: bytes) -> None:
        with pytest.raises(CorruptRecord) as caught:
            codec.decode_sidecar(data, LOCATION)
        assert caught.value.location == LOCATION
        assert caught.value.code == "E_CORRUPT_RECORD"


class TestProperties:
    def test_stop_code_is_the_code_string_or_none(self) -> None:
        assert sidecar().stop_code is None
        stopped = sidecar(
            state=RunState.FAILED, stop=StopInfo(code=StopCode.DRIFT, message="drift in x")
        )
        assert stopped.stop_code == "STOP_DRIFT"
        assert type(stopped.stop_code) is str

    def test_pending_gate_is_the_last_gate_while_awaiting(self) -> None:
        sg1 = gate_record(Gate.SG_1, use())
        sg2 = gate_record(Gate.SG_2)
        waiting = sidecar(state=RunState.AWAITING_LIFECYCLE_AUTHORIZATION, gates=(sg1, sg2))
        assert waiting.pending_gate == sg2
        at_sg1 = sidecar(state=RunState.AWAITING_CUT_AUTHORIZATION, gates=(sg1,))
        assert at_sg1.pending_gate == sg1

    @pytest.mark.parametrize(
        "state", [s for s in RunState if not s.value.startswith("AWAITING")], ids=str
    )
    def test_no_pending_gate_unless_awaiting(self, state: RunState) -> None:
        sg1 = gate_record(Gate.SG_1, use())
        assert sidecar(state=state, gates=(sg1,)).pending_gate is None

    def test_no_pending_gate_while_awaiting_without_a_gate_record(self) -> None:
        assert sidecar(state=RunState.AWAITING_CUT_AUTHORIZATION).pending_gate is None

    def test_gate_finds_a_gate_by_name(self) -> None:
        sg1 = gate_record(Gate.SG_1, use())
        sg2 = gate_record(Gate.SG_2)
        sc = sidecar(gates=(sg1, sg2))
        assert sc.gate(Gate.SG_1) == sg1
        assert sc.gate(Gate.SG_2) == sg2
        assert sidecar(gates=(sg1,)).gate(Gate.SG_2) is None
        assert sidecar().gate(Gate.SG_1) is None

    def test_a_gate_is_satisfied_by_enough_distinct_approvers(self) -> None:
        assert not gate_record(Gate.SG_1).satisfied
        assert gate_record(Gate.SG_1, use()).satisfied
        twice = gate_record(Gate.SG_1, use(n=1), use(n=2), required=2)
        assert twice.approvers == {REVIEWER}
        assert not twice.satisfied
        assert gate_record(Gate.SG_1, use(n=1), use(REVIEWER_2, n=2), required=2).satisfied

    def test_one_reject_rejects_the_gate(self) -> None:
        rejected = gate_record(
            Gate.SG_2, use(n=1), use(REVIEWER_2, Decision.REJECT, n=2), required=1
        )
        assert rejected.rejected
        assert not rejected.satisfied
        assert not gate_record(Gate.SG_2, use()).rejected
