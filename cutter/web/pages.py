"""What the review page shows, as plain values (pure): the inbox rows and the
source text cut at the unit boundaries ``cutter review`` reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cutter.core.policy import ANYONE, GateRule
from cutter.core.review import UnitView
from cutter.core.sidecar import Sidecar

MAX_SOURCE_BYTES = 4 << 20  # beyond this the page shows the units, not the text


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the source: a unit's bytes (``unit`` set) or text between units."""

    start: int
    end: int
    text: str
    unit: UnitView | None = None


def segments(data: bytes, units: tuple[UnitView, ...]) -> tuple[Segment, ...]:
    """``data`` cut at the units' byte ranges, in order; each slice decoded on its own
    (ranges are bytes), overlaps clipped so every byte is shown once."""
    out: list[Segment] = []
    cursor = 0
    for unit in sorted(units, key=lambda u: (u.start, u.end)):
        start, end = max(unit.start, cursor), min(unit.end, len(data))
        if start > cursor:
            out.append(Segment(cursor, start, _text(data[cursor:start])))
        if end > start:
            out.append(Segment(start, end, _text(data[start:end]), unit))
            cursor = end
    if cursor < len(data):
        out.append(Segment(cursor, len(data), _text(data[cursor:])))
    return tuple(out)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class InboxRow:
    run_id: str
    doc_id: str
    mode: str
    gate: str
    since: datetime
    approved_by: tuple[str, ...]
    required: int
    may_approve: str  # who may still approve, by the policy
    ttl_seconds: int
    proofs: tuple[str, ...]


def inbox_row(sidecar: Sidecar, rule: GateRule) -> InboxRow | None:
    """The inbox's line for a run waiting at a gate (None: it waits at none). The
    count required is the policy's, not the run's own copy."""
    gate = sidecar.pending_gate
    if gate is None:
        return None
    done = tuple(sorted(gate.approvers))
    return InboxRow(
        run_id=sidecar.run_id,
        doc_id=sidecar.doc_id,
        mode=sidecar.mode.value,
        gate=gate.gate.value,
        since=gate.opened_at,
        approved_by=done,
        required=rule.required_approvals,
        may_approve=may_still_approve(rule, sidecar.started_by, done),
        ttl_seconds=rule.ttl_seconds,
        proofs=rule.proofs_for(sidecar.mode),
    )


def may_still_approve(rule: GateRule, started_by: str, done: tuple[str, ...]) -> str:
    """Who the policy lets approve next: the approvers not yet counted, less the
    starter unless self-approval is allowed."""
    excluded = set(done) if rule.allow_self_approval else {*done, started_by}
    if ANYONE in rule.approvers:
        others = ", ".join(sorted(excluded))
        return f"any authenticated principal but {others}" if others else "anyone"
    left = [name for name in rule.approvers if name not in excluded]
    return ", ".join(left) if left else "nobody"


def duration(seconds: int) -> str:
    """``15 min``, ``24 h``, ``2 d 3 h``: a ttl a reviewer reads."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")) if n
    ]
    return " ".join(parts) or "0 s"
