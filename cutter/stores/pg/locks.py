"""One walk per document at a time, across processes: a session advisory lock held
on a dedicated connection for one walk segment (one open run per document is the
run store's rule, ``RunStore.create``). It dies with its connection, so a
crashed process never leaves a document locked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from cutter.core.errors import DocumentBusy
from cutter.stores.pg import queries as q
from cutter.stores.pg.connect import connect, domain_errors

CLOSE_TIMEOUT = 5.0


class PgDocumentLocks:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    @asynccontextmanager
    async def hold(self, doc_id: str, run_id: str) -> AsyncIterator[None]:
        conn = await connect(self.dsn)
        try:
            with domain_errors("document lock"):
                await conn.execute(q.SET_APPLICATION_NAME, f"iu-cutter {run_id}")
                locked = await conn.fetchval(q.TRY_DOC_LOCK, doc_id)
                if not locked:
                    holder = await conn.fetchrow(q.DOC_LOCK_HOLDER, doc_id)
                    raise DocumentBusy(
                        doc_id,
                        f"{holder['application_name'] or 'another session'} (pid {holder['pid']})"
                        if holder is not None
                        else "another session",
                    )
            yield
            with domain_errors("document unlock"):
                await conn.execute(q.DOC_UNLOCK, doc_id)
        finally:
            with anyio.move_on_after(CLOSE_TIMEOUT, shield=True) as closing:
                await conn.close()
            if closing.cancelled_caught:
                conn.terminate()
