"""Identifier validation: hostile ids are refused before they reach a path or a query."""

from __future__ import annotations

import re
import secrets

from cutter.core.canonical import sha256_hex
from cutter.core.errors import InvalidIdentifier

MAX_ID_LENGTH = 128
MAX_KB_ID_LENGTH = 512
MAX_KB_ID_SEGMENTS = 8

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _check_text(kind: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier(kind, f"expected a string, got {type(value).__name__}")
    if not value:
        raise InvalidIdentifier(kind, "empty")
    if len(value) > limit:
        raise InvalidIdentifier(kind, f"longer than {limit} characters")
    return value


def check_token(kind: str, value: object) -> str:
    """A flat id (document, run, approver): letters, digits and ``_ . : -``, no ``..``."""
    text = _check_text(kind, value, MAX_ID_LENGTH)
    if not _TOKEN.fullmatch(text) or ".." in text:
        raise InvalidIdentifier(kind, f"{text[:40]!r} has characters outside [A-Za-z0-9_.:-]")
    return text


def check_doc_id(value: object) -> str:
    return check_token("doc_id", value)


def check_sv_id(value: object) -> str:
    return check_token("sv_id", value)


def derived_sv_id(doc_id: str, sha256: str) -> str:
    """The id of the source version of ``doc_id`` whose bytes hash to ``sha256``, when
    the publisher names none: the same document and bytes are the same version."""
    return "sv-" + sha256_hex(f"{doc_id}\x00{sha256}".encode())[:24]


def default_sd_id(doc_id: str) -> str:
    """The source document id of ``doc_id`` when the publisher names none."""
    return f"sd-{doc_id}"


def check_run_id(value: object) -> str:
    return check_token("run_id", value)


def check_kb_id(value: object) -> str:
    """A KB address: up to 8 ``/``-separated segments of ``[A-Za-z0-9_.-]``, none ``..``,
    none but the last ending in ``.json``."""
    text = _check_text("kb_id", value, MAX_KB_ID_LENGTH)
    segments = text.split("/")
    if len(segments) > MAX_KB_ID_SEGMENTS:
        raise InvalidIdentifier("kb_id", f"more than {MAX_KB_ID_SEGMENTS} segments")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or ".." in segment:
            raise InvalidIdentifier("kb_id", f"bad segment {segment[:40]!r}")
    for segment in segments[:-1]:
        # Kept from the file stores (which kept ``a/b`` in ``a/b.json``, so
        # ``a/b.json/c`` could shadow a doc): an id valid once stays valid everywhere.
        if segment.endswith(".json"):
            raise InvalidIdentifier("kb_id", f"inner segment {segment[:40]!r} ends in .json")
    return text


def new_run_id() -> str:
    return "run-" + secrets.token_hex(8)


def new_nonce() -> str:
    return secrets.token_hex(16)


MAX_TEXT_LENGTH = 2000


def check_text(kind: str, value: object, limit: int = MAX_TEXT_LENGTH) -> str:
    """Free text an operator gives (a reason): a string that encodes as UTF-8."""
    if not isinstance(value, str):
        raise InvalidIdentifier(kind, f"expected a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidIdentifier(kind, f"longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidIdentifier(kind, "is not valid Unicode text (lone surrogate)") from None
    return value


def check_reason(value: object, kind: str = "reason") -> str:
    """A reason that must say something (engaging the kill switch): free text, as
    ``check_text``, that is not empty or whitespace only."""
    text = check_text(kind, value)
    if not text.strip():
        raise InvalidIdentifier(kind, "is required and may not be blank: say why")
    return text
