"""The checks and ids every ``SourcePublisher.publish`` applies before it stores a
version, so the memory, SQLite and PostgreSQL stores refuse and name alike."""

from __future__ import annotations

from cutter.core.canonical import sha256_hex
from cutter.core.doc_size import check_document_size
from cutter.core.errors import InvalidIdentifier
from cutter.core.ids import check_doc_id, check_sv_id, default_sd_id, derived_sv_id
from cutter.core.records import SourceVersion
from cutter.runtime.offloop import off_loop


async def content_sha256(data: bytes) -> str:
    """The sha256 of a source's bytes, hashed off the loop (a document may be large)."""
    return await off_loop(sha256_hex, data, size=len(data))


async def new_version(
    doc_id: str, data: bytes, *, sv_id: str | None = None, sd_id: str | None = None
) -> SourceVersion:
    """The version ``data`` becomes: a checked document id (``InvalidIdentifier``), at
    most ``MAX_DOCUMENT_BYTES`` (``DocumentTooLarge``), hashed off the loop; without
    ``sv_id`` the id is derived from the document and the bytes."""
    doc_id = check_doc_id(doc_id)
    check_document_size(len(data))
    sha = await content_sha256(data)
    return SourceVersion(
        doc_id=doc_id,
        sd_id=sd_id or default_sd_id(doc_id),
        sv_id=check_sv_id(derived_sv_id(doc_id, sha) if sv_id is None else sv_id),
        sha256=sha,
        size=len(data),
    )


def version_taken(sv_id: str, held_by: str) -> InvalidIdentifier:
    """The refusal of a named ``sv_id`` that another version (of ``held_by``) holds."""
    return InvalidIdentifier("sv_id", f"{sv_id} names another version (of {held_by}) already")
