"""The PostgreSQL notification outbox: ``outbox`` and ``deliveries`` (migration 0007).

``insert_notices`` runs on the connection, inside the transaction, that saves a
sidecar (``records``): the notices commit or roll back with the save, in one
statement. ``PgOutbox`` is the rest of the ``Outbox`` port, on the writer's pool.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from cutter.core.errors import CorruptRecord
from cutter.core.notices import Notice, decode_notice, encode_notice
from cutter.core.outbox import Delivery, DeliveryState, DueDelivery, NoticeRecord
from cutter.stores.pg.connect import domain_errors

INSERT_NOTICES = """
INSERT INTO outbox (notice_id, run_id, event, notice)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
ON CONFLICT (notice_id) DO NOTHING
"""
_DELIVERY = "notice_id, endpoint, state, attempts, next_at, last_error"
_DISPATCH = "UPDATE outbox SET dispatched = true WHERE notice_id = $1 AND NOT dispatched"
_ADD_DELIVERIES = f"""
INSERT INTO deliveries ({_DELIVERY})
SELECT $1, endpoint, 'pending', 0, $3, NULL FROM unnest($2::text[]) AS endpoint
ON CONFLICT DO NOTHING
"""
_DUE = """
SELECT o.notice, d.notice_id, d.endpoint, d.state, d.attempts, d.next_at, d.last_error
FROM deliveries d JOIN outbox o USING (notice_id)
WHERE d.state = 'pending' AND d.next_at <= $1 ORDER BY d.next_at LIMIT $2
"""
_RECORD = """
UPDATE deliveries SET state = $3, attempts = $4, next_at = $5, last_error = $6
WHERE notice_id = $1 AND endpoint = $2
"""
_LIST = """
SELECT * FROM (
    SELECT seq, notice_id, notice, dispatched FROM outbox
    WHERE $1::text IS NULL OR run_id = $1 ORDER BY seq DESC LIMIT $2
) newest ORDER BY seq
"""
_DELIVERIES_OF = f"""
SELECT {_DELIVERY} FROM deliveries WHERE notice_id = ANY($1::text[])
ORDER BY notice_id, endpoint COLLATE "C"
"""

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def insert_notices(conn: Conn, notices: Sequence[Notice]) -> None:
    """A saved sidecar's notices (``Enqueued.fresh``) into the outbox, each id once, in
    one statement: call it inside the save's transaction."""
    await _insert(conn, notices)


async def _insert(conn: Conn, notices: Sequence[Notice]) -> int:
    if not notices:
        return 0
    status = await conn.execute(
        INSERT_NOTICES,
        [n.notice_id for n in notices],
        [n.run_id for n in notices],
        [n.event for n in notices],
        [encode_notice(n) for n in notices],
    )
    return int(status.rsplit(" ", 1)[-1])


def _delivery(row: asyncpg.Record) -> Delivery:
    try:
        return Delivery(
            notice_id=str(row["notice_id"]),
            endpoint=str(row["endpoint"]),
            state=DeliveryState(str(row["state"])),
            attempts=int(str(row["attempts"])),
            next_at=row["next_at"],
            last_error=None if row["last_error"] is None else str(row["last_error"]),
        )
    except ValueError as exc:
        raise CorruptRecord(f"deliveries/{row['notice_id']}", str(exc)) from None


def _notice(notice_id: object, data: object) -> Notice:
    return decode_notice(bytes(data), f"outbox/{notice_id}")  # type: ignore[call-overload]


class PgOutbox:
    """``Outbox`` in ``outbox`` and ``deliveries``, on the writer's pool."""

    pool: asyncpg.Pool

    async def enqueue(self, notice: Notice) -> bool:
        with domain_errors("enqueue notice"):
            async with self.pool.acquire() as conn:
                return await _insert(conn, [notice]) == 1

    async def undispatched(self, limit: int) -> builtins.list[Notice]:
        with domain_errors("outbox read"):
            rows = await self.pool.fetch(
                "SELECT notice_id, notice FROM outbox WHERE NOT dispatched ORDER BY seq LIMIT $1",
                limit,
            )
        return [_notice(r["notice_id"], r["notice"]) for r in rows]

    async def dispatch(self, notice_id: str, endpoints: Sequence[str], at: datetime) -> None:
        with domain_errors("dispatch notice"):
            async with self.pool.acquire() as conn, conn.transaction():
                if await conn.execute(_DISPATCH, notice_id) != "UPDATE 1":
                    return  # dispatched already (or no such notice): nothing more
                await conn.execute(_ADD_DELIVERIES, notice_id, list(endpoints), at)

    async def due(self, now: datetime, limit: int) -> builtins.list[DueDelivery]:
        with domain_errors("outbox read"):
            rows = await self.pool.fetch(_DUE, now, limit)
        return [
            DueDelivery(notice=_notice(r["notice_id"], r["notice"]), delivery=_delivery(r))
            for r in rows
        ]

    async def next_due(self) -> datetime | None:
        with domain_errors("outbox read"):
            value = await self.pool.fetchval(
                "SELECT min(next_at) FROM deliveries WHERE state = 'pending'"
            )
        return None if value is None else value

    async def record_attempt(self, delivery: Delivery) -> None:
        with domain_errors("record delivery"):
            await self.pool.execute(
                _RECORD,
                delivery.notice_id,
                delivery.endpoint,
                delivery.state.value,
                delivery.attempts,
                delivery.next_at,
                delivery.last_error,
            )

    async def notifications(self, run_id: str | None, limit: int) -> builtins.list[NoticeRecord]:
        with domain_errors("outbox read"):
            rows = await self.pool.fetch(_LIST, run_id, limit)
            found = await self.pool.fetch(_DELIVERIES_OF, [r["notice_id"] for r in rows])
        deliveries: dict[str, builtins.list[Delivery]] = {}
        for d in found:
            deliveries.setdefault(d["notice_id"], []).append(_delivery(d))
        return [
            NoticeRecord(
                notice=_notice(r["notice_id"], r["notice"]),
                dispatched=bool(r["dispatched"]),
                deliveries=tuple(deliveries.get(r["notice_id"], ())),
            )
            for r in rows
        ]
