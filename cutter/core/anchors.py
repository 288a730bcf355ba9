"""Ledger anchors: the chain checked against what the runs recorded outside it (pure).

The hash chain proves that the entries it holds are unchanged, not that none are
missing: a ledger cut short, emptied, or rewritten and re-hashed from the genesis
value still verifies. Each live run therefore records, outside the ledger, a
``LedgerAnchor`` for every entry it appended (its cut; its rollback): the
position, the entry hash and the envelope's sha256. ``check_ledger`` checks the
chain and every anchor against the stored entries and says, run by run, which
anchored entry is missing or changed. Design and limits: docs/ledger.md §8.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from cutter.core.canonical import canonical
from cutter.core.kbdocs import AnchorKind, LedgerAnchor
from cutter.core.ledger import (
    ChainBroken,
    CutEnvelope,
    LedgerEntry,
    RevertEnvelope,
    RollbackEnvelope,
    StoredEntry,
    decode_envelope,
    verify_stored,
)

UNANCHORED_SHOWN = 10  # unanchored entries a report lists by name; the rest are counted


class AnchorStatus(enum.StrEnum):
    HOLDS = "holds"
    MISSING = "missing"  # no entry at the anchored position: truncated, deleted, emptied
    CHANGED = "changed"  # the entry there differs: another envelope, or another hash


class AnchorFinding(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    doc_id: str
    kind: AnchorKind
    seq: int
    entry_hash: str
    status: AnchorStatus
    detail: str = ""


class UnanchoredEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    run_id: str  # "?" when the stored envelope does not decode
    kind: str


class LedgerReport(msgspec.Struct, frozen=True, kw_only=True):
    entries: int
    head: str | None  # the head hash when the chain holds
    chain_error: str | None  # "ledger entry p: reason" for the first entry that does not
    findings: tuple[AnchorFinding, ...]  # one per anchor, in ledger order
    unanchored: tuple[UnanchoredEntry, ...]  # entries no anchor names (informational)

    @property
    def problems(self) -> tuple[AnchorFinding, ...]:
        return tuple(f for f in self.findings if f.status is not AnchorStatus.HOLDS)

    @property
    def ok(self) -> bool:
        return self.chain_error is None and not self.problems


def anchor_kind(entry: LedgerEntry) -> AnchorKind:
    return _KINDS[type(entry.envelope)]


_KINDS: dict[type, AnchorKind] = {
    CutEnvelope: "cut",
    RollbackEnvelope: "rollback",
    RevertEnvelope: "revert",
}


def anchor_of(entry: LedgerEntry) -> LedgerAnchor:
    """The anchor of an entry a run appended: a pure function of the entry."""
    envelope = entry.envelope
    return LedgerAnchor(
        run_id=envelope.run_id,
        doc_id=envelope.doc_id,
        kind=anchor_kind(entry),
        seq=entry.seq,
        entry_hash=entry.entry_hash,
        envelope_sha=_sha(canonical(envelope)),
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def judge(
    anchor: LedgerAnchor,
    at: tuple[str, str] | None,
    *,
    entries: int,
    moved_to: int | None = None,
    other: str = "",
) -> tuple[AnchorStatus, str]:
    """Whether ``anchor`` holds, given ``at`` = (entry_hash, envelope sha) of the entry
    now at its position (None: the ledger is shorter), ``entries`` the ledger's length,
    ``moved_to`` where the anchored envelope is now if elsewhere, ``other`` what the
    entry now at the position belongs to."""
    elsewhere = "" if moved_to is None else f"; its envelope is now entry {moved_to}"
    if at is None:
        where = "the ledger is empty" if entries == 0 else f"the ledger ends at entry {entries - 1}"
        return AnchorStatus.MISSING, where + elsewhere
    entry_hash, envelope_sha = at
    if envelope_sha != anchor.envelope_sha:
        holder = f" ({other})" if other else ""
        return AnchorStatus.CHANGED, f"the entry holds another envelope{holder}{elsewhere}"
    if entry_hash != anchor.entry_hash:
        return AnchorStatus.CHANGED, (
            "the entry holds this run's envelope under another entry_hash: an entry before "
            "it was changed, removed or inserted and the chain recomputed"
        )
    return AnchorStatus.HOLDS, ""


def judge_entry(anchor: LedgerAnchor, entry: LedgerEntry | None) -> tuple[AnchorStatus, str]:
    """``judge`` for the decoded entry at the anchor's position, None when the ledger is
    shorter (closeout's check)."""
    if entry is None:
        return AnchorStatus.MISSING, "the ledger has no entry there"
    other = f"run {entry.envelope.run_id}, {anchor_kind(entry)}"
    at = (entry.entry_hash, _sha(canonical(entry.envelope)))
    return judge(anchor, at, entries=entry.seq + 1, other=other)


def _describe_envelope(data: bytes) -> tuple[str, str]:
    """(run_id, kind) of stored envelope bytes, ("?", "undecodable") when they do not decode."""
    try:
        envelope = decode_envelope(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return "?", "undecodable"
    return envelope.run_id, _KINDS[type(envelope)]


def check_ledger(rows: Sequence[StoredEntry], anchors: Iterable[LedgerAnchor]) -> LedgerReport:
    """Check the chain over ``rows`` (storage order) and every anchor against them.

    An anchor is checked against the entry at its *position* in storage order
    (what the chain numbers), whatever ``seq`` that entry claims."""
    head: str | None
    try:
        head, chain_error = verify_stored(rows), None
    except ChainBroken as exc:
        head, chain_error = None, str(exc)
    shas = [_sha(row.envelope) for row in rows]
    first_at: dict[str, int] = {}
    for position, sha in enumerate(shas):
        first_at.setdefault(sha, position)
    ordered = sorted(anchors, key=lambda a: (a.seq, a.run_id, a.kind))
    findings: list[AnchorFinding] = []
    for anchor in ordered:
        position = anchor.seq
        present = 0 <= position < len(rows)
        moved = first_at.get(anchor.envelope_sha)
        other = ""
        if present and shas[position] != anchor.envelope_sha:
            run_id, kind = _describe_envelope(rows[position].envelope)
            other = f"run {run_id}, {kind}"
        status, detail = judge(
            anchor,
            (rows[position].entry_hash, shas[position]) if present else None,
            entries=len(rows),
            moved_to=moved if moved != position else None,
            other=other,
        )
        findings.append(
            AnchorFinding(
                run_id=anchor.run_id,
                doc_id=anchor.doc_id,
                kind=anchor.kind,
                seq=anchor.seq,
                entry_hash=anchor.entry_hash,
                status=status,
                detail=detail,
            )
        )
    named = {a.envelope_sha for a in ordered}
    unanchored = []
    for position, sha in enumerate(shas):
        if sha not in named:
            run_id, kind = _describe_envelope(rows[position].envelope)
            unanchored.append(UnanchoredEntry(seq=position, run_id=run_id, kind=kind))
    return LedgerReport(
        entries=len(rows),
        head=head,
        chain_error=chain_error,
        findings=tuple(findings),
        unanchored=tuple(unanchored),
    )


def describe(report: LedgerReport) -> list[str]:
    """The report as lines a person reads: the chain, then each run with a problem."""
    lines = [f"ledger: {_count(report.entries, 'entry', 'entries')}"]
    if report.chain_error is None:
        lines.append(f"chain: intact, head {report.head}")
    else:
        lines.append(f"chain: BROKEN at {report.chain_error}")
    runs = {f.run_id for f in report.findings}
    holding = sum(f.status is AnchorStatus.HOLDS for f in report.findings)
    lines.append(
        f"anchors: {len(report.findings)} recorded by "
        f"{_count(len(runs), 'run', 'runs')}, {holding} hold"
    )
    problems = report.problems
    by_run: dict[str, list[AnchorFinding]] = {}
    for finding in problems:  # in ledger order: the run with the oldest damage first
        by_run.setdefault(finding.run_id, []).append(finding)
    for run_id, findings in by_run.items():
        lines.append(f"run {run_id} (document {findings[0].doc_id}):")
        lines.extend(
            f"  {f.kind} entry {f.seq} {f.status.value.upper()}: {f.detail}" for f in findings
        )
    if report.unanchored:
        shown = ", ".join(
            f"{u.seq} (run {u.run_id}, {u.kind})" for u in report.unanchored[:UNANCHORED_SHOWN]
        )
        more = len(report.unanchored) - UNANCHORED_SHOWN
        lines.append(
            f"entries no anchor names: {shown}" + (f" and {more} more" if more > 0 else "")
        )
    if report.ok:
        lines.append("OK: the chain holds and every anchored entry is in place")
    else:
        bad_runs = len(by_run)
        parts = [] if report.chain_error is None else ["the chain is broken"]
        if problems:
            parts.append(
                f"{_count(len(problems), 'anchored entry', 'anchored entries')} of "
                f"{_count(bad_runs, 'run', 'runs')} missing or changed"
            )
        lines.append("FAILED: " + "; ".join(parts))
    return lines


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
