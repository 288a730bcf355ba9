"""``FileLedger``: the hash-chained ledger, one canonical entry per line.

Layout, crash argument and concurrency: ``cutter.stores.file_target``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import msgspec

from cutter.canonical import canonical, sha256_hex
from cutter.errors import CorruptRecord
from cutter.ledger import (
    LedgerEntry,
    LedgerEnvelope,
    StoredEntry,
    decode_envelope,
    next_entry,
    verify_stored,
)
from cutter.stores.atomic import read_bytes, write_atomic
from cutter.stores.file_primitives import decode_record


class LedgerLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One stored entry; ``envelope`` is the canonical envelope bytes, verbatim."""

    seq: int
    prev_hash: str
    entry_hash: str
    envelope_sha: str
    envelope: msgspec.Raw


_line_decoder = msgspec.json.Decoder(LedgerLine)
LEDGER_FILE = "ledger.jsonl"


class FileLedger:
    """``Ledger`` (plus ``verify``) in ``root/ledger.jsonl``; see ``file_target``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._path = self._root / LEDGER_FILE
        self._lock = anyio.Lock()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def path(self) -> Path:
        return self._path

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._append, envelope)

    async def entries(self) -> list[LedgerEntry]:
        data = await anyio.to_thread.run_sync(read_bytes, self._path)
        return [entry for _, entry in self._parse(data)]

    async def stored(self) -> list[StoredEntry]:
        """Every line as stored (``LedgerReader``); a line that does not decode raises
        ``CorruptRecord`` naming it."""
        data = await anyio.to_thread.run_sync(read_bytes, self._path)
        return [
            StoredEntry(
                line.seq, line.prev_hash, line.entry_hash, bytes(line.envelope), line.envelope_sha
            )
            for line in self._lines(data)
        ]

    async def verify(self) -> str:
        """Verify the chain over the stored bytes; the head hash, or ``ChainBroken``."""
        return verify_stored(await self.stored())

    def _lines(self, data: bytes | None) -> list[LedgerLine]:
        if not data:
            return []
        if not data.endswith(b"\n"):
            raise CorruptRecord(str(self._path), "ends in a partial line")
        return [
            decode_record(_line_decoder.decode, text, f"{self._path} line {number}")
            for number, text in enumerate(data[:-1].split(b"\n"), start=1)
        ]

    def _parse(self, data: bytes | None) -> list[tuple[LedgerLine, LedgerEntry]]:
        parsed: list[tuple[LedgerLine, LedgerEntry]] = []
        for number, line in enumerate(self._lines(data), start=1):
            envelope = decode_record(
                decode_envelope, bytes(line.envelope), f"{self._path} line {number}"
            )
            entry = LedgerEntry(
                seq=line.seq,
                prev_hash=line.prev_hash,
                entry_hash=line.entry_hash,
                envelope=envelope,
            )
            parsed.append((line, entry))
        return parsed

    def _append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        data = read_bytes(self._path) or b""
        parsed = self._parse(data)
        for _, entry in parsed:
            if entry.envelope == envelope:
                return entry
        entry = next_entry(parsed[-1][1] if parsed else None, envelope)
        body = canonical(envelope)
        line = LedgerLine(
            seq=entry.seq,
            prev_hash=entry.prev_hash,
            entry_hash=entry.entry_hash,
            envelope_sha=sha256_hex(body),
            envelope=msgspec.Raw(body),
        )
        write_atomic(self._path, data + msgspec.json.encode(line) + b"\n")
        return entry


if TYPE_CHECKING:  # the store satisfies its ports (checked by mypy, free at run time)
    from cutter.ports import Ledger, LedgerReader

    _ledger: Ledger = FileLedger(Path())
    _reader: LedgerReader = FileLedger(Path())
