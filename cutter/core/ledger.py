"""Ledger v2 envelopes and the hash chain (pure; storage is a port).

``entry_hash = sha256(prev_hash ‖ canonical(envelope))`` where ``prev_hash`` is
the 32 raw bytes of the previous entry's hash (32 zero bytes for the first).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from cutter.core.canonical import canonical

GENESIS_HASH = "00" * 32
_HEX64 = re.compile(r"[0-9a-f]{64}")


class LedgerEnvelopeBase(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    run_id: str
    doc_id: str
    sv_id: str
    change_set_id: str


class CutEnvelope(LedgerEnvelopeBase, frozen=True, kw_only=True, tag="cut"):
    manifest_digest: str
    iu_count: int


class RollbackEnvelope(LedgerEnvelopeBase, frozen=True, kw_only=True, tag="rollback"):
    backup_id: str
    reason: str


class RevertEnvelope(LedgerEnvelopeBase, frozen=True, kw_only=True, tag="revert"):
    """A restore run's record (docs/revert.md): the document's rows go back to
    ``backup_id`` (``reverts`` names the run a ``cutter revert`` undoes; None for a
    ``cutter restore``), from the rows ``pre_restore_backup_id`` holds; ``iu_count``
    rows active after. ``change_set_id`` is the restore run's own: it names no rows,
    only what a rollback of the restore undoes."""

    reverts: str | None
    backup_id: str
    pre_restore_backup_id: str
    iu_count: int


LedgerEnvelope = CutEnvelope | RollbackEnvelope | RevertEnvelope


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    seq: int
    prev_hash: str
    entry_hash: str
    envelope: LedgerEnvelope


def chain_hash(prev_hash: str, envelope: LedgerEnvelope) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(envelope)).hexdigest()


def next_entry(head: LedgerEntry | None, envelope: LedgerEnvelope) -> LedgerEntry:
    prev = head.entry_hash if head else GENESIS_HASH
    seq = head.seq + 1 if head else 0
    return LedgerEntry(
        seq=seq, prev_hash=prev, entry_hash=chain_hash(prev, envelope), envelope=envelope
    )


class ChainBroken(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        super().__init__(f"ledger entry {seq}: {reason}")


def verify_chain(entries: Sequence[LedgerEntry]) -> str:
    """Check every link; return the head hash or raise ``ChainBroken`` naming the
    position of the first entry that does not hold."""
    prev = GENESIS_HASH
    for position, entry in enumerate(entries):
        if entry.seq != position:
            raise ChainBroken(position, f"expected seq {position}, stored {entry.seq}")
        if entry.prev_hash != prev:
            raise ChainBroken(position, "prev_hash does not match the previous entry")
        if chain_hash(prev, entry.envelope) != entry.entry_hash:
            raise ChainBroken(position, "entry_hash does not match its contents")
        prev = entry.entry_hash
    return prev


class StoredEntry(NamedTuple):
    """A ledger entry as a store keeps it: the envelope as its canonical bytes."""

    seq: int
    prev_hash: str
    entry_hash: str
    envelope: bytes
    envelope_sha: str | None = None  # a store's index of the envelope, when it keeps one


def verify_stored(rows: Sequence[StoredEntry]) -> str:
    """Check a ledger as stored and return its head hash, or raise ``ChainBroken``
    naming the position of the first entry that does not hold.

    The hash is checked over the stored bytes themselves, those bytes must be the
    canonical encoding of what they decode to, and a stored envelope index must
    match them, so any changed byte is found."""
    prev = GENESIS_HASH
    for position, row in enumerate(rows):
        if row.seq != position:
            raise ChainBroken(position, f"expected seq {position}, stored {row.seq}")
        if row.prev_hash != prev:
            raise ChainBroken(position, "prev_hash does not match the previous entry")
        if not _HEX64.fullmatch(row.entry_hash):
            raise ChainBroken(position, "entry_hash is not 64 lowercase hex digits")
        if hashlib.sha256(bytes.fromhex(prev) + row.envelope).hexdigest() != row.entry_hash:
            raise ChainBroken(position, "entry_hash does not match the stored envelope bytes")
        if (
            row.envelope_sha is not None
            and hashlib.sha256(row.envelope).hexdigest() != row.envelope_sha
        ):
            raise ChainBroken(position, "envelope_sha does not match the stored envelope")
        try:
            envelope = decode_envelope(row.envelope)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ChainBroken(position, "the stored envelope does not decode") from exc
        if canonical(envelope) != row.envelope:
            raise ChainBroken(position, "the stored envelope is not in canonical form")
        prev = row.entry_hash
    return prev


_envelope_decoder: msgspec.json.Decoder[LedgerEnvelope] = msgspec.json.Decoder(LedgerEnvelope)


def decode_envelope(data: bytes) -> LedgerEnvelope:
    return _envelope_decoder.decode(data)
