"""Shared helpers of the whole-walk PostgreSQL tests.

``table_digest`` is how a test proves "nothing was written": one sha256 per target
table over every row in primary-key order, read with the superuser connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg
import msgspec

from cutter.core.kbdocs import Approval, Decision
from cutter.core.ports import KnowledgeBase
from cutter.core.records import Candidate, SourceVersion
from cutter.core.route import Gate
from cutter.core.sidecar import Sidecar
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.pg.target import PgSourceRepository
from cutter.walk.runner import utc_now
from tests._harness import REVIEWER

DOC_ID = "doc-charter-001"
N_IUS = 12

# The target tables a cut may change, each with its primary key (the digest order).
TARGET_TABLES: Mapping[str, str] = {
    "documents": "doc_id",
    "source_versions": "sv_id",
    "ius": "doc_id, sv_id, ordinal",
    "ledger": "seq",
    "backups": "backup_id",
}

_encoder = msgspec.json.Encoder()


def _encode_row(record: asyncpg.Record) -> bytes:
    """Column names and values in column order; bytes as base64, times as RFC 3339."""
    return _encoder.encode([[name, value] for name, value in record.items()])


async def table_digest(admin_dsn: str) -> dict[str, str]:
    """sha256 per target table over all its rows ordered by primary key."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        digests: dict[str, str] = {}
        for table, key in TARGET_TABLES.items():
            h = hashlib.sha256()
            # Table and key names are the constants above, never input.
            for record in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}"):
                row = _encode_row(record)
                h.update(len(row).to_bytes(8, "big"))
                h.update(row)
            digests[table] = h.hexdigest()
        return digests
    finally:
        await conn.close()


async def admin_fetch(admin_dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def admin_execute(admin_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def publish_source(admin_dsn: str, doc_id: str, data: bytes) -> SourceVersion:
    """Publish a version as the ingest would: with the superuser, not the writer."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        return await PgSourceRepository(conn).publish(doc_id, data)
    finally:
        await conn.close()


class SourcesDiscoverer:
    """Finds the candidates of whichever known source it is shown (several versions)."""

    def __init__(self, *seeded: InMemoryDiscoverer) -> None:
        self._by_source = {d.source: d.candidates for d in seeded}
        self.calls = 0

    def discover(self, data: bytes) -> Sequence[Candidate]:
        self.calls += 1
        return self._by_source[data]


async def write_approval(
    kb: KnowledgeBase,
    sidecar: Sidecar,
    *,
    decision: Decision = Decision.APPROVE,
    approver: str = REVIEWER,
    issued_at: datetime | None = None,
    suffix: str = "",
) -> str:
    """An approval answering exactly the gate ``sidecar`` waits at; returns its kb_id."""
    gate = sidecar.pending_gate
    assert gate is not None, f"run {sidecar.run_id} is {sidecar.state}, not at a gate"
    kb_id = f"approvals/{sidecar.run_id}/{gate.gate.value}{suffix}"
    await kb.put(
        kb_id,
        Approval(
            run_id=sidecar.run_id,
            gate=gate.gate,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            decision=decision,
            approver=approver,
            reason="checked the plan against the source",
            issued_at=issued_at or utc_now(),
            review_decision_id=f"review-{sidecar.run_id}" if gate.gate is Gate.SG_2 else None,
        ),
    )
    return kb_id


async def kb_ids(admin_dsn: str, prefix: str) -> list[str]:
    rows = await admin_fetch(
        admin_dsn, "SELECT kb_id FROM kb_docs WHERE starts_with(kb_id, $1) ORDER BY kb_id", prefix
    )
    return [r["kb_id"] for r in rows]
