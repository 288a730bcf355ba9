"""Recording ledger anchors in the KB, and verifying a stored ledger against them.

The pure parts (what an anchor is, how one is judged) are in ``cutter.core.anchors``;
this module reads and writes them through the ports. Design: docs/ledger.md §8.
"""

from __future__ import annotations

from cutter.core.anchors import AnchorStatus, LedgerReport, anchor_of, check_ledger, judge_entry
from cutter.core.errors import CorruptRecord, StopVerifyFailed
from cutter.core.kbdocs import ANCHORS_PREFIX, AnchorKind, LedgerAnchor, anchor_doc_id
from cutter.core.ports import KnowledgeBase, Ledger, LedgerReader
from cutter.runtime.logs import get_logger


async def held_anchor(kb: KnowledgeBase, run_id: str, kind: AnchorKind) -> LedgerAnchor | None:
    """The anchor of ``kind`` the run recorded, if any."""
    kb_id = anchor_doc_id(run_id, kind)
    try:
        doc = await kb.get(kb_id)
    except KeyError:
        return None
    if not isinstance(doc, LedgerAnchor) or (doc.run_id, doc.kind) != (run_id, kind):
        raise CorruptRecord(kb_id, "not this run's ledger anchor")
    return doc


async def record_anchor(kb: KnowledgeBase, anchor: LedgerAnchor) -> LedgerAnchor:
    """Record ``anchor`` unless the run recorded one of this kind before; return the one
    the KB holds afterwards. The first record wins and is never overwritten: a replay
    writes the same bytes again (a no-op), and an anchor that disagrees with a later
    one is evidence the caller must not erase (it is logged as
    ``ledger_anchor_disagrees``). A run is walked by one process at a time (document
    locks), so the read and the write do not race.

    The ``ledger_anchored`` log line is a second witness of the anchor, outside the
    store, wherever the logs are shipped."""
    log = get_logger(run_id=anchor.run_id)
    held = await held_anchor(kb, anchor.run_id, anchor.kind)
    if held is None:
        await kb.put(anchor_doc_id(anchor.run_id, anchor.kind), anchor)
        log.info("ledger_anchored", kind=anchor.kind, seq=anchor.seq, entry_hash=anchor.entry_hash)
        return anchor
    if held != anchor:
        log.warning(
            "ledger_anchor_disagrees",
            kind=anchor.kind,
            anchored_seq=held.seq,
            anchored_hash=held.entry_hash,
            entry_seq=anchor.seq,
            entry_hash=anchor.entry_hash,
        )
    return held


async def confirm_cut_anchor(
    kb: KnowledgeBase, ledger: Ledger, run_id: str, entry_hash: str, *, kind: AnchorKind = "cut"
) -> LedgerAnchor:
    """The run's cut anchor (a restore run's ``revert`` anchor), checked against the
    ledger as it stands now.

    A run whose cut was appended before anchors existed has none yet: its entry
    is found by the pinned ``entry_hash`` and anchored here. Raises
    ``StopVerifyFailed`` when the entry is missing or changed."""
    anchor = await held_anchor(kb, run_id, kind)
    if anchor is None:  # a run from before anchors: rare, so the whole ledger is read
        found = [e for e in await ledger.entries() if e.entry_hash == entry_hash]
        if not found:
            raise StopVerifyFailed(
                f"the ledger holds no entry {entry_hash[:12]}… recorded by this run's cut"
            )
        anchor = await record_anchor(kb, anchor_of(found[0]))
    if anchor.entry_hash != entry_hash:
        raise StopVerifyFailed(
            f"this run's ledger anchor names entry hash {anchor.entry_hash[:12]}…, "
            f"its manifest_envelope_id pin {entry_hash[:12]}…"
        )
    status, detail = judge_entry(anchor, await ledger.at(anchor.seq))
    if status is not AnchorStatus.HOLDS:
        raise StopVerifyFailed(f"ledger entry {anchor.seq} of this run's cut {status}: {detail}")
    return anchor


async def read_anchors(kb: KnowledgeBase) -> list[LedgerAnchor]:
    """Every anchor the KB holds; a doc under the prefix that is not one is corrupt."""
    anchors = []
    for kb_id in await kb.list(ANCHORS_PREFIX):
        doc = await kb.get(kb_id)
        if not isinstance(doc, LedgerAnchor) or kb_id != anchor_doc_id(doc.run_id, doc.kind):
            raise CorruptRecord(kb_id, "not the ledger anchor its id names")
        anchors.append(doc)
    return anchors


async def verify_ledger(ledger: LedgerReader, kb: KnowledgeBase) -> LedgerReport:
    """The chain and every recorded anchor, checked: what ``cutter verify-ledger`` prints.

    The anchors are read before the ledger: a run appends its entry before it records
    the anchor, so every anchor read names an entry the later read can see, even
    while runs go on (an entry appended meanwhile is at worst listed as unanchored)."""
    anchors = await read_anchors(kb)
    return check_ledger(await ledger.stored(), anchors)
