"""Ledger v2: envelopes, their canonical bytes, and the hash chain.

``entry_hash = sha256(prev_hash ‖ canonical(envelope))``, ``prev_hash`` taken as
32 raw bytes, 32 zero bytes before the first entry (cutter/core/ledger.py,
docs/storage.md).
"""

from __future__ import annotations

import hashlib
import itertools

import msgspec
import pytest

from cutter.core.canonical import canonical
from cutter.core.ledger import (
    GENESIS_HASH,
    ChainBroken,
    CutEnvelope,
    LedgerEntry,
    LedgerEnvelope,
    RollbackEnvelope,
    chain_hash,
    next_entry,
    verify_chain,
)

MANIFEST_DIGEST = "0123456789abcdef" * 4

ENVELOPES: tuple[LedgerEnvelope, ...] = (
    CutEnvelope(
        run_id="run-a",
        doc_id="doc-charter-001",
        sv_id="sv-charter-001-v1",
        change_set_id="cs-a",
        manifest_digest=MANIFEST_DIGEST,
        iu_count=12,
    ),
    RollbackEnvelope(
        run_id="run-a",
        doc_id="doc-charter-001",
        sv_id="sv-charter-001-v1",
        change_set_id="cs-a",
        backup_id="bk-a",
        reason="rejected at SG_2",
    ),
    CutEnvelope(
        run_id="run-b",
        doc_id="doc-charter-001",
        sv_id="sv-charter-001-v1",
        change_set_id="cs-b",
        manifest_digest=MANIFEST_DIGEST,
        iu_count=12,
    ),
    CutEnvelope(
        run_id="run-c",
        doc_id="doc-hien-phap-2013",
        sv_id="sv-hien-phap-2013-v1",
        change_set_id="cs-c",
        manifest_digest="f" * 64,
        iu_count=120,
    ),
)


def build_chain(envelopes: tuple[LedgerEnvelope, ...] = ENVELOPES) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for envelope in envelopes:
        entries.append(next_entry(entries[-1] if entries else None, envelope))
    return entries


def other(value: str | int) -> str | int:
    """A different value of the same type (a hex string stays hex)."""
    if isinstance(value, int):
        return value + 1
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def with_field(entry: LedgerEntry, name: str) -> LedgerEntry:
    """``entry`` with one field changed: an entry field or, by name, an envelope field."""
    if name in LedgerEntry.__struct_fields__:
        return msgspec.structs.replace(entry, **{name: other(getattr(entry, name))})
    envelope = msgspec.structs.replace(
        entry.envelope, **{name: other(getattr(entry.envelope, name))}
    )
    return msgspec.structs.replace(entry, envelope=envelope)


TAMPERS = [
    (position, name)
    for position, envelope in enumerate(ENVELOPES)
    for name in ("prev_hash", "entry_hash", *type(envelope).__struct_fields__)
]


class TestChain:
    def test_entries_link_from_genesis(self) -> None:
        entries = build_chain()
        assert [e.seq for e in entries] == [0, 1, 2, 3]
        assert entries[0].prev_hash == GENESIS_HASH == "0" * 64
        for before, after in itertools.pairwise(entries):
            assert after.prev_hash == before.entry_hash
        assert [e.envelope for e in entries] == list(ENVELOPES)
        assert len({e.entry_hash for e in entries}) == 4

    def test_each_hash_is_sha256_of_the_raw_previous_hash_and_the_canonical_envelope(
        self,
    ) -> None:
        prev = bytes(32)
        for entry in build_chain():
            expected = hashlib.sha256(prev + canonical(entry.envelope)).hexdigest()
            assert entry.entry_hash == expected
            assert chain_hash(entry.prev_hash, entry.envelope) == expected
            prev = bytes.fromhex(entry.entry_hash)

    def test_verify_chain_returns_the_head_hash(self) -> None:
        entries = build_chain()
        assert verify_chain(entries) == entries[-1].entry_hash
        assert verify_chain(entries[:2]) == entries[1].entry_hash

    def test_an_empty_chain_verifies_to_genesis(self) -> None:
        assert verify_chain([]) == GENESIS_HASH

    def test_a_chain_survives_a_round_trip_through_its_stored_form(self) -> None:
        entries = build_chain()
        data = msgspec.json.encode(entries)
        decoded = msgspec.json.decode(data, type=list[LedgerEntry])
        assert decoded == entries
        assert [type(e.envelope) for e in decoded] == [type(e) for e in ENVELOPES]
        assert verify_chain(decoded) == entries[-1].entry_hash

    def test_the_same_envelope_after_a_different_history_hashes_differently(self) -> None:
        alone = next_entry(None, ENVELOPES[2])
        chained = build_chain()[2]
        assert alone.envelope == chained.envelope
        assert alone.entry_hash != chained.entry_hash


class TestTamperIsFound:
    @pytest.mark.parametrize(("position", "name"), TAMPERS, ids=[f"{p}-{n}" for p, n in TAMPERS])
    def test_changing_one_field_of_one_entry_is_found_at_that_entry(
        self, position: int, name: str
    ) -> None:
        entries = build_chain()
        entries[position] = with_field(entries[position], name)
        with pytest.raises(ChainBroken, match=f"^ledger entry {position}: ") as caught:
            verify_chain(entries)
        assert caught.value.seq == position

    def test_a_forged_seq_is_found_and_the_error_names_that_entry(self) -> None:
        entries = build_chain()
        entries[3] = msgspec.structs.replace(entries[3], seq=1)
        with pytest.raises(ChainBroken, match="expected seq 3") as caught:
            verify_chain(entries)
        # Entry 3 is the broken one; the forged number names entry 1, which is intact.
        assert caught.value.seq == 3
        assert str(caught.value).startswith("ledger entry 3: ")

    def test_changing_the_envelope_kind_is_found(self) -> None:
        entries = build_chain()
        cut = entries[2].envelope
        assert isinstance(cut, CutEnvelope)
        swapped = RollbackEnvelope(
            run_id=cut.run_id,
            doc_id=cut.doc_id,
            sv_id=cut.sv_id,
            change_set_id=cut.change_set_id,
            backup_id=cut.manifest_digest,
            reason=str(cut.iu_count),
        )
        entries[2] = msgspec.structs.replace(entries[2], envelope=swapped)
        with pytest.raises(ChainBroken) as caught:
            verify_chain(entries)
        assert caught.value.seq == 2

    def test_removing_an_entry_from_the_middle_is_found(self) -> None:
        entries = build_chain()
        del entries[1]
        with pytest.raises(ChainBroken):
            verify_chain(entries)

    def test_swapping_two_entries_is_found(self) -> None:
        entries = build_chain()
        entries[1], entries[2] = entries[2], entries[1]
        with pytest.raises(ChainBroken) as caught:
            verify_chain(entries)
        assert caught.value.seq in (1, 2)

    def test_rehashing_one_entry_breaks_the_next_link(self) -> None:
        entries = build_chain()
        forged = with_field(entries[1], "reason")
        entries[1] = msgspec.structs.replace(
            forged, entry_hash=chain_hash(forged.prev_hash, forged.envelope)
        )
        with pytest.raises(ChainBroken, match="prev_hash") as caught:
            verify_chain(entries)
        assert caught.value.seq == 2


class TestGoldenVector:
    """Golden values derived by hand from the documented encoding (msgspec JSON,
    no whitespace, UTF-8, tag field "kind" first, then the fields in declaration
    order: LedgerEnvelopeBase's run_id, doc_id, sv_id, change_set_id, then the subclass's).
    Deliberately literal: a change here changes every ledger hash ever stored."""

    def test_cut_envelope_canonical_bytes_and_chain_hash(self) -> None:
        envelope = CutEnvelope(
            run_id="run-golden-0001",
            doc_id="doc-charter-001",
            sv_id="sv-charter-001-v1",
            change_set_id="cs-00112233445566778899aabbccddeeff",
            manifest_digest="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            iu_count=12,
        )
        golden = (
            b'{"kind":"cut",'
            b'"run_id":"run-golden-0001",'
            b'"doc_id":"doc-charter-001",'
            b'"sv_id":"sv-charter-001-v1",'
            b'"change_set_id":"cs-00112233445566778899aabbccddeeff",'
            b'"manifest_digest":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",'
            b'"iu_count":12}'
        )
        assert canonical(envelope) == golden
        entry = next_entry(None, envelope)
        assert entry.seq == 0
        assert entry.prev_hash == "0" * 64
        assert entry.entry_hash == hashlib.sha256(bytes(32) + golden).hexdigest()

    def test_rollback_envelope_canonical_bytes_are_utf8(self) -> None:
        envelope = RollbackEnvelope(
            run_id="run-golden-0002",
            doc_id="doc-hien-phap-2013",
            sv_id="sv-hien-phap-2013-v1",
            change_set_id="cs-golden",
            backup_id="bk-golden",
            reason="Điều 44 bị từ chối",
        )
        golden = (
            '{"kind":"rollback",'
            '"run_id":"run-golden-0002",'
            '"doc_id":"doc-hien-phap-2013",'
            '"sv_id":"sv-hien-phap-2013-v1",'
            '"change_set_id":"cs-golden",'
            '"backup_id":"bk-golden",'
            '"reason":"Điều 44 bị từ chối"}'
        ).encode()
        assert canonical(envelope) == golden
        assert next_entry(None, envelope).entry_hash == (
            hashlib.sha256(bytes(32) + golden).hexdigest()
        )

    def test_the_chain_hash_formula_over_the_encoder_output(self) -> None:
        # Independent of the field order: the link formula itself.
        envelope = ENVELOPES[0]
        head = next_entry(None, envelope)
        assert head.entry_hash == hashlib.sha256(bytes(32) + canonical(envelope)).hexdigest()
        second = next_entry(head, ENVELOPES[1])
        assert second.entry_hash == (
            hashlib.sha256(bytes.fromhex(head.entry_hash) + canonical(ENVELOPES[1])).hexdigest()
        )
