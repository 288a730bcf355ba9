"""The embedded notification outbox: ``outbox`` and ``deliveries`` (migration 0002).

``insert_notices`` runs inside the write that saves a sidecar (``records``), so the
notices commit or roll back with the save; ``SqliteOutbox`` is the rest of the
``Outbox`` port, for the daemon's deliverer and ``cutter notifications``. Times are
fixed-width UTC text, so they compare as text in the order they compare as times.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from cutter.core.errors import CorruptRecord
from cutter.core.notices import Notice, decode_notice, encode_notice
from cutter.core.outbox import Delivery, DeliveryState, DueDelivery, NoticeRecord
from cutter.stores.sqlite.database import Database

_INSERT = (
    "INSERT INTO outbox (notice_id, run_id, event, notice) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (notice_id) DO NOTHING"
)
_DELIVERY = "notice_id, endpoint, state, attempts, next_at, last_error"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _insert(conn: sqlite3.Connection, notice: Notice) -> bool:
    args = (notice.notice_id, notice.run_id, notice.event, encode_notice(notice))
    return conn.execute(_INSERT, args).rowcount == 1


def insert_notices(conn: sqlite3.Connection, notices: Sequence[Notice]) -> None:
    """A saved sidecar's notices (``Enqueued.fresh``) into the outbox, each id once: call
    it in the save's write."""
    for notice in notices:
        _insert(conn, notice)


def _delivery(row: tuple[object, ...]) -> Delivery:
    notice_id, endpoint, state, attempts, next_at, last_error = row
    try:
        return Delivery(
            notice_id=str(notice_id),
            endpoint=str(endpoint),
            state=DeliveryState(str(state)),
            attempts=int(str(attempts)),
            next_at=_time(str(next_at)),
            last_error=None if last_error is None else str(last_error),
        )
    except ValueError as exc:
        raise CorruptRecord(f"deliveries/{notice_id}", str(exc)) from None


def _notice(notice_id: str, data: object) -> Notice:
    return decode_notice(bytes(data), f"outbox/{notice_id}")  # type: ignore[call-overload]


class SqliteOutbox:
    """``Outbox`` in ``outbox`` and ``deliveries``."""

    db: Database

    async def enqueue(self, notice: Notice) -> bool:
        return await self.db.write(lambda c: _insert(c, notice))

    async def undispatched(self, limit: int) -> builtins.list[Notice]:
        rows = self.db.all(
            "SELECT notice_id, notice FROM outbox WHERE dispatched = 0 ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [_notice(n, data) for n, data in rows]

    async def dispatch(self, notice_id: str, endpoints: Sequence[str], at: datetime) -> None:
        due = stamp(at)

        def dispatch(conn: sqlite3.Connection) -> None:
            marked = conn.execute(
                "UPDATE outbox SET dispatched = 1 WHERE notice_id = ? AND dispatched = 0",
                (notice_id,),
            ).rowcount
            if marked != 1:
                return  # dispatched already (or no such notice): nothing more
            conn.executemany(
                f"INSERT INTO deliveries ({_DELIVERY}) VALUES (?, ?, 'pending', 0, ?, NULL)"
                " ON CONFLICT DO NOTHING",
                [(notice_id, endpoint, due) for endpoint in endpoints],
            )

        await self.db.write(dispatch)

    async def due(self, now: datetime, limit: int) -> builtins.list[DueDelivery]:
        rows = self.db.all(
            f"SELECT o.notice, {', '.join('d.' + c for c in _DELIVERY.split(', '))}"
            " FROM deliveries d JOIN outbox o USING (notice_id)"
            " WHERE d.state = 'pending' AND d.next_at <= ? ORDER BY d.next_at LIMIT ?",
            (stamp(now), limit),
        )
        return [
            DueDelivery(notice=_notice(str(row[1]), row[0]), delivery=_delivery(row[1:]))
            for row in rows
        ]

    async def next_due(self) -> datetime | None:
        value = self.db.value("SELECT min(next_at) FROM deliveries WHERE state = 'pending'")
        return None if value is None else _time(str(value))

    async def record_attempt(self, delivery: Delivery) -> None:
        args = (
            delivery.state.value,
            delivery.attempts,
            stamp(delivery.next_at),
            delivery.last_error,
            delivery.notice_id,
            delivery.endpoint,
        )
        await self.db.write(
            lambda c: c.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, last_error = ?"
                " WHERE notice_id = ? AND endpoint = ?",
                args,
            )
        )

    async def notifications(self, run_id: str | None, limit: int) -> builtins.list[NoticeRecord]:
        where, args = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        rows = self.db.all(
            f"SELECT notice_id, notice, dispatched FROM outbox {where} ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        )
        records: builtins.list[NoticeRecord] = []
        for notice_id, data, dispatched in reversed(rows):
            deliveries = self.db.all(
                f"SELECT {_DELIVERY} FROM deliveries WHERE notice_id = ? ORDER BY endpoint",
                (notice_id,),
            )
            records.append(
                NoticeRecord(
                    notice=_notice(notice_id, data),
                    dispatched=bool(dispatched),
                    deliveries=tuple(_delivery(d) for d in deliveries),
                )
            )
        return records
