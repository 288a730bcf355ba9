"""Canonical bytes and digests.

The canonical encoding of a value is msgspec's JSON encoding of a Struct: fields
in declaration order, no whitespace, UTF-8, integers as JSON integers,
timestamps as RFC 3339 with the offset they carry (the clock gives UTC), bytes as
base64. Digests are lowercase hex
sha256 over those bytes. Change a Struct's fields and every digest changes: the
struct definitions are part of the format (docs/ledger.md).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="deterministic")


def canonical(value: Any) -> bytes:
    return _encoder.encode(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    return sha256_hex(canonical(value))
