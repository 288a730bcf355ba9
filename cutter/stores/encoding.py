"""The stored bytes of the orchestrator's records, and the KB's prefix rule: what every
store (memory, SQLite, PostgreSQL) applies alike, so each refuses what the others do."""

from __future__ import annotations

from cutter import codec
from cutter.ids import check_run_id
from cutter.kbdocs import KBDoc
from cutter.sidecar import Sidecar


def encode_kb_doc(kb_id: str, doc: KBDoc) -> bytes:
    """The stored bytes of ``doc``; refuses (``CorruptRecord``) what ``get`` could not read."""
    data = codec.encode(doc)
    codec.decode_kb_doc(data, f"{kb_id} (refused, not written)")
    return data


def encode_sidecar(sidecar: Sidecar) -> bytes:
    """The stored bytes of ``sidecar``; refuses what ``load`` could not read."""
    run_id = check_run_id(sidecar.run_id)
    data = codec.encode(sidecar)
    codec.decode_sidecar(data, f"run {run_id} (refused, not written)")
    return data


def under_prefix(kb_id: str, prefix: str) -> bool:
    """``list`` semantics: the prefix doc itself and every doc below it ("" is all)."""
    return not prefix or kb_id == prefix or kb_id.startswith(prefix + "/")
