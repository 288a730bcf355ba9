"""Notices (pure): what a saved sidecar says happened, with ids that do not change when
the same facts are saved again; the retry schedule of a delivery."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from cutter.core.errors import StopCode
from cutter.core.kbdocs import Decision
from cutter.core.notices import decode_notice, encode_notice, notices_for, reminder_for
from cutter.core.outbox import (
    BACKOFF_CAP,
    Delivery,
    DeliveryState,
    NoticeRecord,
    attempted,
    backoff,
    with_state,
)
from cutter.core.sidecar import ApprovalUse, StopInfo
from cutter.core.states import RunState
from tests._harness import PAUSED_AT, paused_sidecar


def _use(kb_id: str, approver: str = "alice") -> ApprovalUse:
    return ApprovalUse(
        approval_kb_id=kb_id,
        approver=approver,
        decision=Decision.APPROVE,
        peer=None,
        consumed_at=PAUSED_AT + timedelta(minutes=5),
    )


def test_a_waiting_run_says_its_gate_opened() -> None:
    paused = paused_sidecar("run-a")
    (notice,) = notices_for(paused)
    (gate,) = paused.gates
    assert notice.event == "gate_opened"
    assert (notice.run_id, notice.doc_id, notice.at) == ("run-a", paused.doc_id, gate.opened_at)
    assert notice.detail["gate"] == "SG_1"
    assert notice.detail["nonce"] == gate.nonce
    assert notice.detail["request_digest"] == gate.request_digest


def test_each_consumed_approval_and_the_end_are_notices() -> None:
    paused = paused_sidecar("run-a")
    (gate,) = paused.gates
    uses = (_use("approvals/run-a/SG_1/alice"), _use("approvals/run-a/SG_1/bob", "bob"))
    stopped = msgspec.structs.replace(
        paused,
        gates=(msgspec.structs.replace(gate, uses=uses),),
        state=RunState.FAILED,
        stop=StopInfo(code=StopCode.DRIFT, message="source changed"),
    )
    notices = notices_for(stopped)
    assert [n.event for n in notices] == [
        "gate_opened",
        "approval_consumed",
        "approval_consumed",
        "run_stopped",
    ]
    assert [n.detail.get("approver") for n in notices[1:3]] == ["alice", "bob"]
    assert notices[3].detail == {
        "mode": stopped.mode.value,
        "state": "FAILED",
        "stop_code": StopCode.DRIFT.value,
        "stop_message": "source changed",
    }
    closed = msgspec.structs.replace(stopped, state=RunState.CLOSEOUT_REPORTED, stop=None)
    assert notices_for(closed)[-1].event == "closeout"
    assert {n.detail["mode"] for n in notices_for(closed)} == {stopped.mode.value}


def test_the_same_facts_give_the_same_ids_and_other_facts_other_ids() -> None:
    paused = paused_sidecar("run-a")
    later = msgspec.structs.replace(paused, revision=7, updated_at=PAUSED_AT + timedelta(days=1))
    assert notices_for(later) == notices_for(paused)
    other_run = paused_sidecar("run-b")
    (gate,) = paused.gates
    reopened = msgspec.structs.replace(
        paused, gates=(msgspec.structs.replace(gate, nonce="m" * 32),)
    )
    ids = {n.notice_id for s in (paused, other_run, reopened) for n in notices_for(s)}
    assert len(ids) == 3


def test_a_notice_round_trips_through_its_bytes() -> None:
    (notice,) = notices_for(paused_sidecar("run-a"))
    assert decode_notice(encode_notice(notice), "test") == notice


def test_a_reminder_comes_only_inside_the_window_before_the_ttl() -> None:
    paused = paused_sidecar("run-a")
    ttl, before = timedelta(hours=2), timedelta(minutes=30)
    opened = paused.gates[0].opened_at
    assert reminder_for(paused, ttl, before, opened + timedelta(minutes=89)) is None
    early = reminder_for(paused, ttl, before, opened + timedelta(minutes=90))
    late = reminder_for(paused, ttl, before, opened + timedelta(minutes=119))
    assert early is not None
    assert late is not None
    assert early.notice_id == late.notice_id  # one reminder per gate and nonce
    assert early.detail["expires_at"] == (opened + ttl).isoformat()
    assert reminder_for(paused, ttl, before, opened + ttl) is None
    running = msgspec.structs.replace(paused, state=RunState.RUNNING)
    assert reminder_for(running, ttl, before, opened + timedelta(minutes=100)) is None


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert backoff(40) == BACKOFF_CAP


def test_an_attempt_moves_a_delivery_on_and_the_last_one_fails_it() -> None:
    now = PAUSED_AT
    pending = Delivery(notice_id="n-1", endpoint="http://h/x", next_at=now)
    once = attempted(pending, ok=False, error="HTTP 500", now=now, max_attempts=3)
    assert (once.state, once.attempts, once.next_at) == (DeliveryState.PENDING, 1, now + backoff(1))
    twice = attempted(once, ok=False, error="timeout", now=once.next_at, max_attempts=3)
    assert twice.next_at == once.next_at + backoff(2)
    thrice = attempted(twice, ok=False, error="refused", now=twice.next_at, max_attempts=3)
    assert (thrice.state, thrice.attempts, thrice.last_error) == (
        DeliveryState.FAILED,
        3,
        "refused",
    )
    done = attempted(once, ok=True, error=None, now=once.next_at, max_attempts=3)
    assert (done.state, done.attempts, done.last_error) == (DeliveryState.DELIVERED, 2, None)


def test_a_listing_by_state_keeps_only_the_deliveries_in_it() -> None:
    (notice,) = notices_for(paused_sidecar("run-a"))
    ok = Delivery(
        notice_id=notice.notice_id, endpoint="a", state=DeliveryState.DELIVERED, next_at=PAUSED_AT
    )
    bad = Delivery(
        notice_id=notice.notice_id, endpoint="b", state=DeliveryState.FAILED, next_at=PAUSED_AT
    )
    record = NoticeRecord(notice=notice, dispatched=True, deliveries=(ok, bad))
    assert with_state([record], None) == [record]
    assert [r.deliveries for r in with_state([record], DeliveryState.FAILED)] == [(bad,)]
    assert with_state([record], DeliveryState.PENDING) == []
