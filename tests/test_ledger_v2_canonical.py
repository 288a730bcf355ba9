"""Ledger v2 canonical encoding: frozen golden vectors and the spec (docs/ledger.md).

FROZEN GOLDEN VALUES. Every byte string and hash literal in this module was
computed once from the implementation, checked against docs/ledger.md, and then
frozen. They are the wire format of ledger v2: if one of these tests fails, the
canonical bytes of an envelope or the chain hash changed, and every ledger hash
ever stored would stop verifying. Changing a literal here is a format change
(a new ledger version and a migration), never a test fix.

tests/test_ledger_chain.py covers the chain mechanics over computed values; this
module pins the exact bytes, re-implements the encoding from the spec alone, and
tampers with the stored form bit by bit.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cutter.core.canonical import canonical, digest
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

DOC = Path(__file__).resolve().parents[1] / "docs" / "ledger.md"

# --- golden vector 1: a cut (the worked example of docs/ledger.md) ----------------

CUT = CutEnvelope(
    run_id="run-golden",
    doc_id="garden-charter",
    sv_id="garden-charter-v1",
    change_set_id="cs-83c5fb209adc44c1c4ca3c2e15063f65",
    manifest_digest="fdde20530af6853c3e56f42d74a864f4a6525698df36306b3a2df7f85c1c927e",
    iu_count=7,
)
CUT_BYTES = (
    b'{"kind":"cut",'
    b'"run_id":"run-golden",'
    b'"doc_id":"garden-charter",'
    b'"sv_id":"garden-charter-v1",'
    b'"change_set_id":"cs-83c5fb209adc44c1c4ca3c2e15063f65",'
    b'"manifest_digest":"fdde20530af6853c3e56f42d74a864f4a6525698df36306b3a2df7f85c1c927e",'
    b'"iu_count":7}'
)
CUT_HASH = "6fd30b6574e71d7463051c7d5e3f31c98da98ea68bb544320daa09345e5d9cfb"

# --- golden vector 2: a rollback ---------------------------------------------------

ROLLBACK = RollbackEnvelope(
    run_id="run-golden",
    doc_id="garden-charter",
    sv_id="garden-charter-v1",
    change_set_id="cs-83c5fb209adc44c1c4ca3c2e15063f65",
    backup_id="bk-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    reason="rejected at SG_2",
)
ROLLBACK_BYTES = (
    b'{"kind":"rollback",'
    b'"run_id":"run-golden",'
    b'"doc_id":"garden-charter",'
    b'"sv_id":"garden-charter-v1",'
    b'"change_set_id":"cs-83c5fb209adc44c1c4ca3c2e15063f65",'
    b'"backup_id":"bk-0f1e2d3c4b5a69788796a5b4c3d2e1f0",'
    b'"reason":"rejected at SG_2"}'
)
ROLLBACK_HASH = "0348cf8f5fa8d9818b0b624502ccde63c64bec4a271ca224ebf218ae97989d26"

# --- golden vector 3: non-ASCII, quote, backslash, newline, tab, ESC, 4-byte UTF-8 --

HOSTILE_REASON = (
    'aborted by reviewer-bob: Điều 44 "sai ranh giới" \\ C:\\cắt\nline 2\tend \x1b ✓ \U0001f331'
)
HOSTILE = RollbackEnvelope(
    run_id="run-golden-vi",
    doc_id="doc-hien-phap-2013",
    sv_id="sv-hien-phap-2013-v1",
    change_set_id="cs-00112233445566778899aabbccddeeff",
    backup_id="bk-ffeeddccbbaa99887766554433221100",
    reason=HOSTILE_REASON,
)
HOSTILE_BYTES = (
    b'{"kind":"rollback",'
    b'"run_id":"run-golden-vi",'
    b'"doc_id":"doc-hien-phap-2013",'
    b'"sv_id":"sv-hien-phap-2013-v1",'
    b'"change_set_id":"cs-00112233445566778899aabbccddeeff",'
    b'"backup_id":"bk-ffeeddccbbaa99887766554433221100",'
    b'"reason":"aborted by reviewer-bob: '
    b"\xc4\x90i\xe1\xbb\x81u 44 "  # Điều 44: raw UTF-8, no \u escapes
    b'\\"sai ranh gi\xe1\xbb\x9bi\\" '  # "sai ranh giới": quotes escaped as \"
    b"\\\\ C:\\\\c\xe1\xba\xaft"  # \ C:\cắt: each backslash as \\
    b"\\nline 2\\tend "  # newline and tab: the short escapes \n \t
    b"\\u001b "  # ESC (U+001B): \u with four lowercase hex digits
    b'\xe2\x9c\x93 \xf0\x9f\x8c\xb1"}'  # ✓ and U+1F331: raw UTF-8 (3 and 4 bytes)
)
HOSTILE_HASH = "30701590cebd434f4f3db9c541ec6c0d85b9e9fb674c6dff231c15c0cfe31e25"

VECTORS: tuple[tuple[str, LedgerEnvelope, bytes, str], ...] = (
    ("cut", CUT, CUT_BYTES, CUT_HASH),
    ("rollback", ROLLBACK, ROLLBACK_BYTES, ROLLBACK_HASH),
    ("hostile-reason", HOSTILE, HOSTILE_BYTES, HOSTILE_HASH),
)
VECTOR_IDS = [name for name, *_ in VECTORS]

# --- the golden chain: CUT, ROLLBACK, HOSTILE appended in that order ---------------

CHAIN_HASHES = (
    "6fd30b6574e71d7463051c7d5e3f31c98da98ea68bb544320daa09345e5d9cfb",  # seq 0 (= CUT_HASH)
    "ea2fa60ba9828c6207dd44d80267b3c54c74a874dc305237642defa33f0bef33",  # seq 1
    "8fb2909f2aa2d9bf1e04f898d7090fd30932ede519745c36a72ac4add2c1388c",  # seq 2, the head
)
CHAIN_HEAD = CHAIN_HASHES[-1]
ENVELOPES: tuple[LedgerEnvelope, ...] = (CUT, ROLLBACK, HOSTILE)

# The field order of each envelope kind as docs/ledger.md states it.
SPEC_FIELDS = {
    "cut": ("run_id", "doc_id", "sv_id", "change_set_id", "manifest_digest", "iu_count"),
    "rollback": ("run_id", "doc_id", "sv_id", "change_set_id", "backup_id", "reason"),
}


def golden_chain() -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for envelope in ENVELOPES:
        entries.append(next_entry(entries[-1] if entries else None, envelope))
    return entries


# --- a second implementation, written from docs/ledger.md alone --------------------

_SHORT_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
_STRING_TABLE: dict[int, str] = {c: _SHORT_ESCAPES.get(c, f"\\u{c:04x}") for c in range(0x20)}
_STRING_TABLE |= {ord('"'): '\\"', ord("\\"): "\\\\"}


def spec_string(value: str) -> bytes:
    """A JSON string: `"` and `\\` and U+0000..U+001F escaped, everything else raw UTF-8."""
    return b'"' + value.translate(_STRING_TABLE).encode("utf-8") + b'"'


def spec_value(value: object) -> bytes:
    if isinstance(value, bool) or value is None:
        raise TypeError("envelopes hold no booleans or nulls")
    if isinstance(value, int):
        return str(value).encode("ascii")
    if isinstance(value, str):
        return spec_string(value)
    raise TypeError(f"not an envelope value: {value!r}")


def spec_envelope(kind: str, values: dict[str, object]) -> bytes:
    members = [b'"kind":' + spec_string(kind)]
    members += [spec_string(name) + b":" + spec_value(values[name]) for name in SPEC_FIELDS[kind]]
    return b"{" + b",".join(members) + b"}"


def spec_entry_hash(prev_hex: str, canonical_bytes: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hex) + canonical_bytes).hexdigest()


def kind_of(envelope: LedgerEnvelope) -> str:
    return "cut" if isinstance(envelope, CutEnvelope) else "rollback"


class TestGoldenVectors:
    @pytest.mark.parametrize(
        ("name", "envelope", "expected", "entry_hash"), VECTORS, ids=VECTOR_IDS
    )
    def test_canonical_bytes_are_frozen(
        self, name: str, envelope: LedgerEnvelope, expected: bytes, entry_hash: str
    ) -> None:
        assert canonical(envelope) == expected

    @pytest.mark.parametrize(
        ("name", "envelope", "expected", "entry_hash"), VECTORS, ids=VECTOR_IDS
    )
    def test_entry_hash_from_genesis_is_frozen(
        self, name: str, envelope: LedgerEnvelope, expected: bytes, entry_hash: str
    ) -> None:
        entry = next_entry(None, envelope)
        assert entry.seq == 0
        assert entry.prev_hash == GENESIS_HASH == "0" * 64
        assert entry.entry_hash == entry_hash
        assert chain_hash(GENESIS_HASH, envelope) == entry_hash
        # The formula over the literal bytes, independent of the encoder.
        assert hashlib.sha256(bytes(32) + expected).hexdigest() == entry_hash

    @pytest.mark.parametrize(
        ("name", "envelope", "expected", "entry_hash"), VECTORS, ids=VECTOR_IDS
    )
    def test_a_second_implementation_from_the_spec_gives_the_same_bytes_and_hash(
        self, name: str, envelope: LedgerEnvelope, expected: bytes, entry_hash: str
    ) -> None:
        values = msgspec.structs.asdict(envelope)
        ours = spec_envelope(kind_of(envelope), values)
        assert ours == expected
        assert spec_entry_hash("00" * 32, ours) == entry_hash

    @pytest.mark.parametrize(
        ("name", "envelope", "expected", "entry_hash"), VECTORS, ids=VECTOR_IDS
    )
    def test_the_bytes_decode_to_the_envelope_and_re_encode_identically(
        self, name: str, envelope: LedgerEnvelope, expected: bytes, entry_hash: str
    ) -> None:
        decoded = msgspec.json.decode(expected, type=LedgerEnvelope)
        assert decoded == envelope
        assert type(decoded) is type(envelope)
        assert canonical(decoded) == expected

    @pytest.mark.parametrize(
        ("name", "envelope", "expected", "entry_hash"), VECTORS, ids=VECTOR_IDS
    )
    def test_python_json_with_compact_separators_and_no_ascii_escaping_agrees(
        self, name: str, envelope: LedgerEnvelope, expected: bytes, entry_hash: str
    ) -> None:
        """A third implementation: the stdlib writer, members in field order."""
        members = {"kind": kind_of(envelope), **msgspec.structs.asdict(envelope)}
        text = json.dumps(members, separators=(",", ":"), ensure_ascii=False)
        assert text.encode("utf-8") == expected
        assert json.loads(expected.decode("utf-8")) == members

    def test_the_field_order_is_the_declaration_order_the_spec_states(self) -> None:
        assert CutEnvelope.__struct_fields__ == SPEC_FIELDS["cut"]
        assert RollbackEnvelope.__struct_fields__ == SPEC_FIELDS["rollback"]
        assert CutEnvelope.__struct_config__.tag_field == "kind"
        assert CutEnvelope.__struct_config__.tag == "cut"
        assert RollbackEnvelope.__struct_config__.tag == "rollback"
        assert LedgerEntry.__struct_fields__ == ("seq", "prev_hash", "entry_hash", "envelope")


class TestGoldenChain:
    def test_the_chain_hashes_are_frozen(self) -> None:
        entries = golden_chain()
        assert [e.seq for e in entries] == [0, 1, 2]
        assert [e.entry_hash for e in entries] == list(CHAIN_HASHES)
        assert [e.prev_hash for e in entries] == [GENESIS_HASH, *CHAIN_HASHES[:-1]]
        assert CHAIN_HASHES[0] == CUT_HASH  # the first link is vector 1 from genesis

    def test_the_spec_implementation_reproduces_the_chain(self) -> None:
        prev = "00" * 32
        for envelope, frozen in zip(ENVELOPES, CHAIN_HASHES, strict=True):
            prev = spec_entry_hash(
                prev, spec_envelope(kind_of(envelope), msgspec.structs.asdict(envelope))
            )
            assert prev == frozen

    def test_verify_chain_returns_the_frozen_head(self) -> None:
        entries = golden_chain()
        assert verify_chain(entries) == CHAIN_HEAD
        for length in range(len(entries) + 1):
            assert verify_chain(entries[:length]) == ([GENESIS_HASH, *CHAIN_HASHES])[length]

    def test_the_stored_form_round_trips_and_still_verifies(self) -> None:
        entries = golden_chain()
        stored = [msgspec.json.encode(e) for e in entries]
        for entry, data in zip(entries, stored, strict=True):
            # The stored entry carries the envelope's canonical bytes verbatim.
            assert canonical(entry.envelope) in data
        decoded = [msgspec.json.decode(d, type=LedgerEntry) for d in stored]
        assert decoded == entries
        assert verify_chain(decoded) == CHAIN_HEAD

    def test_the_hash_is_over_the_re_encoded_envelope_not_the_stored_text(self) -> None:
        """A stored form with whitespace, another key order and \\u escapes for
        non-ASCII decodes to the same envelope, so it verifies: a verifier must
        re-encode canonically, never hash what it read (docs/ledger.md)."""
        entry = golden_chain()[2]
        assert isinstance(entry.envelope, RollbackEnvelope)
        envelope = msgspec.structs.asdict(entry.envelope)
        loose: dict[str, Any] = {
            "entry_hash": entry.entry_hash,
            "envelope": {"kind": "rollback", **dict(reversed(envelope.items()))},
            "prev_hash": entry.prev_hash,
            "seq": entry.seq,
        }
        text = json.dumps(loose, indent=1, ensure_ascii=True).encode("ascii")
        assert b"\\u0110i\\u1ec1u" in text  # "Điều" written with \u escapes
        relaxed = msgspec.json.decode(text, type=LedgerEntry)
        assert relaxed == entry
        assert canonical(relaxed.envelope) == HOSTILE_BYTES
        assert verify_chain([*golden_chain()[:2], relaxed]) == CHAIN_HEAD


def _key(name: str) -> bytes:
    return b'"' + name.encode() + b'":'


def owner_of_each_byte(stored: bytes) -> list[str]:
    """For each byte of a stored entry, the member whose key last began before it."""
    names = [*LedgerEntry.__struct_fields__, "kind", *SPEC_FIELDS["cut"], *SPEC_FIELDS["rollback"]]
    starts = sorted((stored.index(_key(n)), n) for n in dict.fromkeys(names) if _key(n) in stored)
    owners: list[str] = []
    current = "{"
    for offset in range(len(stored)):
        while starts and starts[0][0] == offset:
            current = starts.pop(0)[1]
        owners.append(current)
    return owners


class TestEveryBitFlipIsCaught:
    @pytest.mark.parametrize("position", range(len(ENVELOPES)))
    def test_every_single_bit_flip_of_a_stored_entry_is_refused_or_found_at_that_entry(
        self, position: int
    ) -> None:
        """Each of the 8 bits of each byte of the stored entry (seq, prev_hash,
        entry_hash and the canonical envelope bytes) is flipped in turn: the flipped
        bytes fail to decode, or decode to an entry that verify_chain rejects naming
        exactly this position, or decode to the very same entry (a \\u escape's hex
        digit in the other case: same meaning, same canonical bytes)."""
        entries = golden_chain()
        stored = msgspec.json.encode(entries[position])
        owners = owner_of_each_byte(stored)
        refused: Counter[str] = Counter()
        found: Counter[str] = Counter()
        neutral: list[tuple[int, int]] = []
        missed: list[tuple[int, int, str]] = []
        for offset in range(len(stored)):
            for bit in range(8):
                flipped = bytearray(stored)
                flipped[offset] ^= 1 << bit
                try:
                    decoded = msgspec.json.decode(bytes(flipped), type=LedgerEntry)
                except (msgspec.DecodeError, UnicodeDecodeError):
                    refused[owners[offset]] += 1
                    continue
                if decoded == entries[position]:
                    # Same meaning, other spelling: checked below, must stay rare.
                    assert canonical(decoded.envelope) == canonical(entries[position].envelope)
                    neutral.append((offset, bit))
                    continue
                tampered = [*entries]
                tampered[position] = decoded
                try:
                    verify_chain(tampered)
                except ChainBroken as exc:
                    if exc.seq == position and str(exc).startswith(f"ledger entry {position}: "):
                        found[owners[offset]] += 1
                        continue
                missed.append((offset, bit, owners[offset]))
        assert missed == []
        assert sum(refused.values()) + sum(found.values()) + len(neutral) == 8 * len(stored)
        # The only flips that keep the meaning are a hex letter's case inside a \u
        # escape (\u001b read as \u001B): a reader accepts both, the canonical form
        # is lowercase, and the hash is over the canonical form, so the entry verifies.
        escapes = {m.start() for m in re.finditer(rb"\\u[0-9a-f]{4}", stored)}
        hex_letters = sum(1 for s in escapes for c in stored[s + 2 : s + 6] if c in b"abcdef")
        assert len(neutral) == hex_letters  # every one of them, and nothing else
        for offset, bit in neutral:
            assert bit == 5, (offset, bit)
            assert chr(stored[offset]) in "abcdef"
            assert any(start + 2 <= offset < start + 6 for start in escapes), offset
        members = {
            "seq",
            "prev_hash",
            "entry_hash",
            *SPEC_FIELDS[kind_of(entries[position].envelope)],
        }
        # Every member had flips that decoded and were caught by the chain itself...
        assert members <= set(found), f"no decodable flip in {members - set(found)}"
        # ...except the tag: one bit never turns "cut" into "rollback", so all refused.
        assert found["kind"] == 0
        assert refused["kind"] > 0


def _other_kind(envelope: LedgerEnvelope) -> LedgerEnvelope:
    shared = {n: getattr(envelope, n) for n in ("run_id", "doc_id", "sv_id", "change_set_id")}
    if isinstance(envelope, CutEnvelope):
        return RollbackEnvelope(**shared, backup_id=envelope.manifest_digest, reason="")
    return CutEnvelope(**shared, manifest_digest=envelope.backup_id, iu_count=0)


# Subtle changes a person would not see, per value type.
STRING_CHANGES: dict[str, Callable[[str], str]] = {
    "trailing-space": lambda s: s + " ",
    "leading-space": lambda s: " " + s,
    "upper-case": lambda s: s.upper() if s.upper() != s else s + "X",
    "last-char-dropped": lambda s: s[:-1],
    "empty": lambda s: "",
    "zero-width-space": lambda s: s[:1] + "\u200b" + s[1:],
    "nul-appended": lambda s: s + "\x00",
}
REASON_CHANGES: dict[str, Callable[[str], str]] = {
    "nfd": lambda s: unicodedata.normalize("NFD", s),
    "crlf": lambda s: s.replace("\n", "\r\n"),
    "tab-as-spaces": lambda s: s.replace("\t", "    "),
    "no-escape-char": lambda s: s.replace("\x1b", ""),
}
INT_CHANGES: dict[str, Callable[[int], int]] = {
    "plus-one": lambda n: n + 1,
    "minus-one": lambda n: n - 1,
    "negated": lambda n: -n if n else -1,
    "plus-2**64": lambda n: n + 2**64,
}


def _mutations() -> list[tuple[int, str, str]]:
    cases: list[tuple[int, str, str]] = []
    for position, envelope in enumerate(ENVELOPES):
        cases += [(position, "seq", c) for c in INT_CHANGES]
        for name in ("prev_hash", "entry_hash"):
            cases += [(position, name, c) for c in ("upper-case", "last-char-dropped", "empty")]
        cases.append((position, "kind", "other-kind"))
        for name in type(envelope).__struct_fields__:
            value = getattr(envelope, name)
            if isinstance(value, int):
                cases += [(position, name, c) for c in INT_CHANGES]
            else:
                cases += [(position, name, c) for c in STRING_CHANGES]
                if name == "reason" and not value.isascii():
                    cases += [(position, name, c) for c in REASON_CHANGES]
    return cases


MUTATIONS = _mutations()


def mutate(entry: LedgerEntry, name: str, change: str) -> LedgerEntry:
    if name == "kind":
        return msgspec.structs.replace(entry, envelope=_other_kind(entry.envelope))
    on_entry = name in LedgerEntry.__struct_fields__
    value = getattr(entry if on_entry else entry.envelope, name)
    if isinstance(value, int):
        new: object = INT_CHANGES[change](value)
    else:
        new = {**STRING_CHANGES, **REASON_CHANGES}[change](value)
    assert new != value, f"{change} does not change {name}"
    if on_entry:
        return msgspec.structs.replace(entry, **{name: new})
    envelope = msgspec.structs.replace(entry.envelope, **{name: new})
    return msgspec.structs.replace(entry, envelope=envelope)


class TestSubtleChangesAreFound:
    @pytest.mark.parametrize(
        ("position", "name", "change"), MUTATIONS, ids=[f"{p}-{n}-{c}" for p, n, c in MUTATIONS]
    )
    def test_a_subtle_change_to_one_field_is_found_at_that_entry(
        self, position: int, name: str, change: str
    ) -> None:
        entries = golden_chain()
        entries[position] = mutate(entries[position], name, change)
        with pytest.raises(ChainBroken, match=f"^ledger entry {position}: ") as caught:
            verify_chain(entries)
        assert caught.value.seq == position

    def test_nfc_and_nfd_spellings_are_different_envelopes(self) -> None:
        """No Unicode normalisation: strings are hashed as given."""
        nfd = unicodedata.normalize("NFD", HOSTILE_REASON)
        assert nfd != HOSTILE_REASON
        assert unicodedata.normalize("NFC", nfd) == HOSTILE_REASON
        changed = msgspec.structs.replace(HOSTILE, reason=nfd)
        assert canonical(changed) != HOSTILE_BYTES
        assert chain_hash(GENESIS_HASH, changed) != HOSTILE_HASH


class TestEncodingRules:
    """The general rules of docs/ledger.md ("Canonical encoding"), pinned to what
    msgspec emits, so an upgrade that changes them fails here first."""

    def test_strings_over_every_unicode_scalar_value(self) -> None:
        every = "".join(
            chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
        )  # all 1,112,064 scalar values
        assert canonical(every) == spec_string(every)

    def test_string_escapes_in_detail(self) -> None:
        assert canonical('"\\/') == b'"\\"\\\\/"'  # solidus is not escaped
        assert canonical("\b\t\n\f\r") == b'"\\b\\t\\n\\f\\r"'
        assert canonical("\x00\x1f") == b'"\\u0000\\u001f"'  # lowercase hex
        assert canonical("\x7f\x80") == b'"\x7f\xc2\x80"'  # DEL and C1 controls raw
        assert canonical("\u2028\u2029") == b'"\xe2\x80\xa8\xe2\x80\xa9"'  # raw too
        assert canonical("<>&'") == b'"<>&\'"'
        assert canonical("é") == b'"\xc3\xa9"'
        assert canonical("\ufeff") == b'"\xef\xbb\xbf"'

    def test_lone_surrogates_cannot_be_encoded(self) -> None:
        envelope = msgspec.structs.replace(ROLLBACK, reason="half a pair: \ud83c")
        with pytest.raises(UnicodeEncodeError):
            canonical(envelope)
        with pytest.raises(UnicodeEncodeError):
            next_entry(None, envelope)

    def test_integers(self) -> None:
        assert canonical([0, 7, -1, 120]) == b"[0,7,-1,120]"
        assert canonical(2**63 - 1) == b"9223372036854775807"
        # msgspec has no range limit: a second implementation must not overflow.
        assert canonical(2**64) == b"18446744073709551616"
        assert msgspec.json.decode(b"18446744073709551616", type=int) == 2**64
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(b"07", type=int)  # no leading zeros
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(b"7.0", type=int)  # no fraction or exponent
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(b"true", type=int)  # a boolean is not an integer

    def test_booleans_and_null(self) -> None:
        assert canonical([True, False, None]) == b"[true,false,null]"

    def test_bytes_are_standard_base64_with_padding(self) -> None:
        assert canonical(b"") == b'""'
        assert canonical(b"a") == b'"YQ=="'
        assert canonical(b"ab") == b'"YWI="'
        assert canonical(b"\xfb\xff\xbf") == b'"+/+/"'  # "+" and "/", not URL-safe

    def test_timestamps(self) -> None:
        at = datetime(2026, 5, 20, 9, 0, tzinfo=UTC)
        assert canonical(at) == b'"2026-05-20T09:00:00Z"'
        assert canonical(at.replace(microsecond=123000)) == b'"2026-05-20T09:00:00.123000Z"'
        assert canonical(at.replace(microsecond=1)) == b'"2026-05-20T09:00:00.000001Z"'
        # Not normalised to UTC: the offset given is the offset written.
        plus7 = timezone(timedelta(hours=7))
        assert canonical(at.astimezone(plus7)) == b'"2026-05-20T16:00:00+07:00"'
        assert digest(at) != digest(at.astimezone(plus7))
        # A naive datetime has no offset at all, so it is not RFC 3339.
        assert canonical(at.replace(tzinfo=None)) == b'"2026-05-20T09:00:00"'

    def test_dict_keys_and_sets_are_sorted_by_code_point(self) -> None:
        keys = {"b": 1, "a": 2, "B": 3, "é": 4, "aa": 5, "\uffff": 6, "\U00010000": 7}
        assert canonical(keys) == (
            '{"B":3,"a":2,"aa":5,"b":1,"é":4,"\uffff":6,"\U00010000":7}'.encode()
        )
        assert canonical(frozenset({"b", "a"})) == b'["a","b"]'

    def test_struct_fields_keep_declaration_order_and_defaults_are_written(self) -> None:
        class Late(msgspec.Struct, kw_only=True):
            zebra: int
            apple: str | None = None

        assert canonical(Late(zebra=1)) == b'{"zebra":1,"apple":null}'

    def test_floats_are_not_canonical(self) -> None:
        # No ledger record holds a float; if one ever did, NaN would encode as null.
        assert canonical(float("nan")) == b"null"
        assert canonical(-0.0) == b"-0.0"


class TestDocAgreement:
    def test_the_spec_carries_the_worked_example_and_every_frozen_hash(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        assert CUT_BYTES.decode("utf-8") in text
        assert ROLLBACK_BYTES.decode("utf-8") in text
        assert HOSTILE_BYTES.decode("utf-8") in text
        assert f"Its canonical bytes ({len(CUT_BYTES)} bytes of ASCII" in text
        assert f"as hex ({len(HOSTILE_BYTES)} bytes)" in text
        for value in (CUT_HASH, ROLLBACK_HASH, HOSTILE_HASH, *CHAIN_HASHES):
            assert value in text, f"docs/ledger.md lacks the frozen hash {value}"
        assert HOSTILE_BYTES.hex() in "".join(text.split()), "the hostile vector's hex dump"
