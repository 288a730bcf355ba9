"""``FileSources``: source versions, their exact bytes, cut marks, current pointers.

Layout, crash argument and concurrency: ``cutter.stores.file_target``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import msgspec

from cutter.canonical import canonical, sha256_hex
from cutter.doc_size import check_document_size
from cutter.errors import CorruptRecord, InvalidIdentifier, UnknownDocument
from cutter.ids import check_doc_id, check_token
from cutter.records import SourceVersion
from cutter.stores.atomic import read_bytes, write_atomic
from cutter.stores.file_primitives import create_once, decode_record, inside_root


def _check_sv_id(sv_id: object) -> str:
    return check_token("sv_id", sv_id)


def derived_sv_id(doc_id: str, data: bytes) -> str:
    """The version id ``cutter.pg.target.publish`` gives: same document and bytes, same id."""
    return "sv-" + sha256_hex(f"{doc_id}\x00{sha256_hex(data)}".encode())[:24]


class CutMark(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sv_id: str
    change_set_id: str


_version_decoder = msgspec.json.Decoder(SourceVersion)
_cut_decoder = msgspec.json.Decoder(CutMark)


class FileSources:
    """``SourceRepository`` (plus ``publish``) under ``root``; see ``file_target``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._lock = anyio.Lock()

    @property
    def root(self) -> Path:
        return self._root

    def version_path(self, sv_id: str) -> Path:
        """The version record (validated; the file need not exist)."""
        path = self._root / "versions" / (_check_sv_id(sv_id) + ".json")
        return inside_root(self._root, path, "sv_id")

    def bytes_path(self, sv_id: str) -> Path:
        path = self._root / "versions" / (_check_sv_id(sv_id) + ".bin")
        return inside_root(self._root, path, "sv_id")

    def cut_path(self, sv_id: str) -> Path:
        return inside_root(
            self._root, self._root / "cuts" / (_check_sv_id(sv_id) + ".json"), "sv_id"
        )

    def current_path(self, doc_id: str) -> Path:
        path = self._root / "current" / (check_doc_id(doc_id) + ".json")
        return inside_root(self._root, path, "doc_id")

    async def publish(
        self, doc_id: str, data: bytes, *, sv_id: str | None = None, sd_id: str | None = None
    ) -> SourceVersion:
        """Store ``data`` as the document's current version (an ingest step).

        Without ``sv_id`` the id is derived from the document and the bytes, so
        publishing the same bytes twice is one version. An ``sv_id`` that names
        another version already is refused (``InvalidIdentifier``)."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._publish, doc_id, bytes(data), sv_id, sd_id)

    async def current(self, doc_id: str) -> SourceVersion:
        return await anyio.to_thread.run_sync(self._current, doc_id)

    async def content(self, sv_id: str) -> bytes:
        return await anyio.to_thread.run_sync(self._content, sv_id)

    async def stored_sha(self, sv_id: str) -> str | None:
        return await anyio.to_thread.run_sync(self._stored_sha, sv_id)

    async def stored_bytes(self, sv_id: str) -> bytes | None:
        return await anyio.to_thread.run_sync(read_bytes, self.bytes_path(sv_id))

    async def mark_cut(self, sv_id: str, change_set_id: str) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._mark_cut, sv_id, change_set_id)

    async def cut_by(self, sv_id: str) -> str | None:
        return await anyio.to_thread.run_sync(self._cut_by, sv_id)

    def _publish(
        self, doc_id: str, data: bytes, sv_id: str | None, sd_id: str | None
    ) -> SourceVersion:
        doc_id = check_doc_id(doc_id)
        check_document_size(len(data))
        sv_id = _check_sv_id(sv_id if sv_id is not None else derived_sv_id(doc_id, data))
        version = SourceVersion(
            doc_id=doc_id,
            sd_id=sd_id or f"sd-{doc_id}",
            sv_id=sv_id,
            sha256=sha256_hex(data),
            size=len(data),
        )
        meta_path, bytes_path = self.version_path(sv_id), self.bytes_path(sv_id)
        current_path = self.current_path(doc_id)
        record = canonical(version)
        stored = read_bytes(meta_path)
        if stored is None:
            # No version record: any bytes file is left from a publish that never
            # committed, and nothing names it. The record is the commit point.
            write_atomic(bytes_path, data)
            if not create_once(meta_path, record):
                stored = read_bytes(meta_path)  # another process committed first
        if stored is not None:
            held = decode_record(_version_decoder.decode, stored, meta_path)
            if held != version:
                raise InvalidIdentifier(
                    "sv_id", f"{sv_id} names another version (of {held.doc_id}) already"
                )
            if read_bytes(bytes_path) != data:
                raise CorruptRecord(str(bytes_path), "does not hold the version's bytes")
        if read_bytes(current_path) != record:
            write_atomic(current_path, record)
        return version

    def _current(self, doc_id: str) -> SourceVersion:
        path = self.current_path(doc_id)
        data = read_bytes(path)
        if data is None:
            raise UnknownDocument(doc_id)
        version = decode_record(_version_decoder.decode, data, path)
        if version.doc_id != doc_id:
            raise CorruptRecord(str(path), f"names document {version.doc_id[:60]!r}")
        try:
            _check_sv_id(version.sv_id)
        except InvalidIdentifier as exc:
            raise CorruptRecord(str(path), exc.message) from exc
        return version

    def _content(self, sv_id: str) -> bytes:
        meta_path, bytes_path = self.version_path(sv_id), self.bytes_path(sv_id)
        stored = read_bytes(meta_path)
        if stored is None:
            raise CorruptRecord(str(meta_path), "no such version")
        version = decode_record(_version_decoder.decode, stored, meta_path)
        if version.sv_id != sv_id:
            raise CorruptRecord(str(meta_path), f"holds version {version.sv_id[:60]!r}")
        data = read_bytes(bytes_path)
        if data is None:
            raise CorruptRecord(str(bytes_path), "missing")
        if len(data) != version.size or sha256_hex(data) != version.sha256:
            raise CorruptRecord(str(bytes_path), "does not match the version's sha256")
        return data

    def _stored_sha(self, sv_id: str) -> str | None:
        data = read_bytes(self.bytes_path(sv_id))
        return None if data is None else sha256_hex(data)

    def _mark_cut(self, sv_id: str, change_set_id: str) -> None:
        path = self.cut_path(sv_id)
        if not self.version_path(sv_id).is_file():
            return  # an unknown version is ignored, as PostgreSQL's UPDATE matches nothing
        create_once(path, canonical(CutMark(sv_id=sv_id, change_set_id=change_set_id)))

    def _cut_by(self, sv_id: str) -> str | None:
        path = self.cut_path(sv_id)
        data = read_bytes(path)
        if data is None:
            return None
        mark = decode_record(_cut_decoder.decode, data, path)
        if mark.sv_id != sv_id:
            raise CorruptRecord(str(path), f"names version {mark.sv_id[:60]!r}")
        return mark.change_set_id


if TYPE_CHECKING:  # the store satisfies its port (checked by mypy, free at run time)
    from cutter.ports import SourceRepository

    _sources: SourceRepository = FileSources(Path())
