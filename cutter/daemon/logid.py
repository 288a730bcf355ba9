"""A client's command id as the log carries it: bounded.

The protocol lets a client choose any id a frame can hold (up to ``MAX_FRAME_BYTES``)
and echoes it whole in the reply; the log, which records every command, keeps
``LOGGED_ID_CHARS`` characters and, for a longer id, its length and a SHA-256
prefix, enough to match a reply to its log line without a megabyte per line.
"""

from __future__ import annotations

import hashlib

LOGGED_ID_CHARS = 64
_PREFIX_CHARS = 32


def logged_id(command_id: str | None) -> str | None:
    """``command_id`` itself when short; else ``<first 32>…(N chars, sha256 <16 hex>)``."""
    if command_id is None or len(command_id) <= LOGGED_ID_CHARS:
        return command_id
    digest = hashlib.sha256(command_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{command_id[:_PREFIX_CHARS]}…({len(command_id)} chars, sha256 {digest})"
