"""Document locks for one process: the embedded default (the daemon is one process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cutter.core.errors import DocumentBusy


class InProcessDocumentLocks:
    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    @asynccontextmanager
    async def hold(self, doc_id: str, run_id: str) -> AsyncIterator[None]:
        holder = self._holders.get(doc_id)
        if holder is not None:
            raise DocumentBusy(doc_id, f"run {holder}")
        self._holders[doc_id] = run_id
        try:
            yield
        finally:
            del self._holders[doc_id]
