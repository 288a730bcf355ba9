"""One typed decoder per stored kind, built once. Decoding failures become
``CorruptRecord`` naming where the bytes came from."""

from __future__ import annotations

import msgspec

from cutter.errors import CorruptRecord, one_line
from cutter.kbdocs import KBDoc
from cutter.sidecar import SIDECAR_SCHEMA, Sidecar

_encoder = msgspec.json.Encoder()
_kb_decoder: msgspec.json.Decoder[KBDoc] = msgspec.json.Decoder(KBDoc)
_sidecar_decoder = msgspec.json.Decoder(Sidecar)


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def decode_kb_doc(data: bytes, location: str) -> KBDoc:
    try:
        return _kb_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(location, one_line(str(exc))) from exc


def decode_stored_sidecar(data: bytes, run_id: str, location: str) -> Sidecar:
    """The sidecar stored under ``run_id``; the record of another run there is corrupt
    (a store must never answer for one run with another's state)."""
    sidecar = decode_sidecar(data, location)
    if sidecar.run_id != run_id:
        raise CorruptRecord(location, f"holds run {sidecar.run_id[:60]!r}")
    return sidecar


def decode_sidecar(data: bytes, location: str) -> Sidecar:
    """A sidecar of this cutter's schema; any other schema is ``CorruptRecord`` too (its
    fields may mean something else)."""
    try:
        sidecar = _sidecar_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(location, one_line(str(exc))) from exc
    if sidecar.schema != SIDECAR_SCHEMA:
        raise CorruptRecord(location, f"schema {sidecar.schema}, not {SIDECAR_SCHEMA}")
    return sidecar
