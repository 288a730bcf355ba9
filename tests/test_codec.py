"""Stored bytes that do not decode are a CorruptRecord naming where they came from."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cutter.core.codec import decode_kb_doc, decode_sidecar
from cutter.core.errors import CorruptRecord, InvalidIdentifier
from cutter.core.ledger import ChainBroken, StoredEntry, verify_stored
from tests._harness import DOC_ID, OPERATOR, build_runner

BAD_UTF8 = [
    b'{"schema":1,"run_id":"\xc3"}',
    b'{"type":"phase","run_id":"\xff\xfe"}',
    b"\xed\xa0\x80",
]


@pytest.mark.parametrize("data", BAD_UTF8)
def test_invalid_utf8_in_a_sidecar_is_corrupt_record(data: bytes) -> None:
    with pytest.raises(CorruptRecord) as caught:
        decode_sidecar(data, "runs/run-x.json")
    assert caught.value.location == "runs/run-x.json"


@pytest.mark.parametrize("data", BAD_UTF8)
def test_invalid_utf8_in_a_kb_doc_is_corrupt_record(data: bytes) -> None:
    with pytest.raises(CorruptRecord, match=r"kb/x\.json"):
        decode_kb_doc(data, "kb/x.json")


def test_invalid_utf8_in_a_stored_ledger_envelope_breaks_the_chain() -> None:
    data = b'{"kind":"cut","run_id":"\xc3"}'
    entry_hash = hashlib.sha256(bytes(32) + data).hexdigest()
    with pytest.raises(ChainBroken) as caught:
        verify_stored([StoredEntry(0, "00" * 32, entry_hash, data)])
    assert caught.value.seq == 0


@pytest.mark.anyio
async def test_an_abort_reason_that_is_not_unicode_text_changes_nothing(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        files = rig.stored()
        with pytest.raises(InvalidIdentifier, match="reason"):
            await rig.runner.abort(sc.run_id, reason="bad \ud800 text", by="ops-kim")
        assert rig.stored() == files
        assert await rig.runner.status(sc.run_id) == sc
