"""Notices (pure): what a saved sidecar says happened, as values a webhook is told.

``notices_for(sidecar)`` reads the facts a sidecar records — each gate opened, each
approval consumed at it, the run's stop, its closeout — and makes one ``Notice`` per
fact. A notice's id is a digest of its run, its event and the fact's key (the gate
and its nonce, the approval's kb_id, ...), so the same facts give the same ids: a run
store writes ``notices_for`` of every sidecar it saves into its outbox, in the
transaction of the save, inserting each id once, and saving the same facts again
enqueues nothing new (docs/notifications.md).

``reminder_for`` is the one notice the sidecar alone does not decide: a gate that has
waited nearly its approval TTL (the policy's ``remind_before_seconds``), as of ``now``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import msgspec

from cutter.core.errors import CorruptRecord, one_line
from cutter.core.notice_events import NoticeEvent
from cutter.core.sidecar import GateRecord, Sidecar
from cutter.core.states import TERMINAL, RunState

Detail = dict[str, str | int | None]


class Notice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One thing that happened to a run, as a webhook receives it (the JSON body)."""

    notice_id: str
    event: NoticeEvent
    run_id: str
    doc_id: str
    at: datetime
    detail: Detail = {}


def notice_id(run_id: str, event: NoticeEvent, key: str) -> str:
    """Deterministic: the same run, event and fact key give the same id."""
    digest = hashlib.sha256(f"{run_id}\x00{event}\x00{key}".encode()).hexdigest()
    return f"n-{digest[:40]}"


def _notice(sidecar: Sidecar, event: NoticeEvent, key: str, at: datetime, detail: Detail) -> Notice:
    """Every notice's detail says the run's mode: a receiver tells a dry run's from a
    live one's."""
    return Notice(
        notice_id=notice_id(sidecar.run_id, event, key),
        event=event,
        run_id=sidecar.run_id,
        doc_id=sidecar.doc_id,
        at=at,
        detail={"mode": sidecar.mode.value, **detail},
    )


def _gate_detail(gate: GateRecord) -> Detail:
    return {
        "gate": gate.gate.value,
        "request_kb_id": gate.request_kb_id,
        "request_digest": gate.request_digest,
        "nonce": gate.nonce,
        "required_approvals": gate.required_approvals,
    }


def notices_for(sidecar: Sidecar) -> list[Notice]:
    """Every notice the facts ``sidecar`` records make, in the order they happened
    (gates in order, each followed by its uses; then the stop or the closeout)."""
    notices: list[Notice] = []
    for gate in sidecar.gates:
        key = f"{gate.gate.value}:{gate.nonce}"
        notices.append(_notice(sidecar, "gate_opened", key, gate.opened_at, _gate_detail(gate)))
        for use in gate.uses:
            detail: Detail = {
                "gate": gate.gate.value,
                "approval_kb_id": use.approval_kb_id,
                "approver": use.approver,
                "decision": use.decision.value,
                "proof": use.proof,
            }
            notices.append(
                _notice(sidecar, "approval_consumed", use.approval_kb_id, use.consumed_at, detail)
            )
    if sidecar.state is RunState.CLOSEOUT_REPORTED:
        detail = {"state": sidecar.state.value}
        notices.append(_notice(sidecar, "closeout", "closeout", sidecar.updated_at, detail))
    elif sidecar.state in TERMINAL:
        stop = sidecar.stop
        detail = {
            "state": sidecar.state.value,
            "stop_code": None if stop is None else stop.code.value,
            "stop_message": None if stop is None else stop.message,
        }
        notices.append(
            _notice(sidecar, "run_stopped", sidecar.state.value, sidecar.updated_at, detail)
        )
    return notices


def remind_at(sidecar: Sidecar, ttl: timedelta, before: timedelta) -> datetime | None:
    """When the gate ``sidecar`` waits at is due a reminder: ``before`` its TTL has
    run since it opened. None when it waits at no gate."""
    gate = sidecar.pending_gate
    if gate is None:
        return None
    return gate.opened_at + ttl - before


def reminder_for(
    sidecar: Sidecar, ttl: timedelta, before: timedelta, now: datetime
) -> Notice | None:
    """The ``approval_reminder`` of the gate ``sidecar`` waits at, when ``now`` is
    within ``before`` of the gate's TTL running out (and not past it); else None.
    Its id is the run's, the gate's and the nonce's: one reminder per waiting gate."""
    gate = sidecar.pending_gate
    due = remind_at(sidecar, ttl, before)
    if gate is None or due is None:
        return None
    expires_at = gate.opened_at + ttl
    if not due <= now < expires_at:
        return None
    detail = {**_gate_detail(gate), "expires_at": expires_at.isoformat()}
    return _notice(sidecar, "approval_reminder", f"{gate.gate.value}:{gate.nonce}", now, detail)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Notice)


def encode_notice(notice: Notice) -> bytes:
    """The exact bytes a webhook is sent and a store keeps."""
    return _encoder.encode(notice)


def decode_notice(data: bytes, location: str) -> Notice:
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(location, one_line(str(exc))) from exc
