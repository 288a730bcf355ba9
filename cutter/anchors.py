"""Ledger anchors: where a run's ledger entries stand, recorded outside the ledger (pure).

The hash chain proves that the entries it holds are unchanged, not that none are
missing: a ledger cut short, emptied, or rewritten and re-hashed from the genesis
value still verifies. Each live run therefore records, outside the ledger, a
``LedgerAnchor`` for every entry it appended (its cut; its rollback): the
position, the entry hash and the envelope's sha256. ``judge`` says whether an
anchor still holds. Design and limits: docs/ledger.md §8.
"""

from __future__ import annotations

import enum
import hashlib

from cutter.canonical import canonical
from cutter.kbdocs import AnchorKind, LedgerAnchor
from cutter.ledger import CutEnvelope, LedgerEntry


class AnchorStatus(enum.StrEnum):
    HOLDS = "holds"
    MISSING = "missing"  # no entry at the anchored position: truncated, deleted, emptied
    CHANGED = "changed"  # the entry there differs: another envelope, or another hash


def anchor_kind(entry: LedgerEntry) -> AnchorKind:
    return "cut" if isinstance(entry.envelope, CutEnvelope) else "rollback"


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
