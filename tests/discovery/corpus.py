"""The corpus (``tests/corpus``, provenance and licences in its SOURCES.md): reading
its documents, deriving their CRLF+BOM variants, and finding lines by number.

A missing document is a missing input (tests/inputs.py): it fails the test under
CI (``CI=true``) and skips it elsewhere.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from tests.inputs import missing_input

CORPUS = Path(__file__).parents[1] / "corpus"

GDPR = "gdpr-2016-679.txt"
US = "us-constitution-1787.txt"
FR = "fr-constitution-1958.txt"
VN_CONSTITUTION = "vn-hien-phap-2013.txt"
VN_CIVIL_CODE = "vn-bo-luat-dan-su-2015.txt"
VN_IT_LAW = "vn-luat-cntt-vbhn-65-2025.md"
CPC = "openjs-cpc-charter.md"
STGB = "de-stgb.md"
GG = "de-grundgesetz.md"
ALL = (GDPR, US, FR, VN_CONSTITUTION, VN_CIVIL_CODE, VN_IT_LAW, CPC, STGB, GG)


@cache
def _read(name: str) -> bytes | None:
    path = CORPUS / name
    return path.read_bytes() if path.is_file() else None


def document(name: str) -> bytes:
    """The exact bytes of a corpus document (fails under CI when absent, else skips)."""
    data = _read(name)
    if data is None:
        missing_input(f"corpus document {CORPUS / name}")
    return data


def crlf_bom(data: bytes) -> bytes:
    """The variant SOURCES.md asks for: a BOM in front, every LF a CRLF."""
    return b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")


def line_start(data: bytes, line: int) -> int:
    """The byte offset where 1-based line ``line`` starts."""
    offset = 0
    for _ in range(line - 1):
        offset = data.index(b"\n", offset) + 1
    return offset


def line_of(data: bytes, offset: int) -> int:
    """The 1-based line holding byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1
