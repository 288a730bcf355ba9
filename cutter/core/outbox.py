"""The outbox's deliveries (pure): their state, the retry schedule, what a listing shows.

A notice (``cutter.core.notices``) enters the run store's outbox in the transaction
that saves the sidecar it comes from. The daemon's deliverer then fans it out into
one ``Delivery`` per webhook of the policy in force that wants its event, and POSTs
each until the endpoint answers 2xx (``delivered``) or ``max_attempts`` have failed
(``failed``). Every attempt is recorded durably — the count and when the next one is
due — so a restarted daemon goes on where the last one was (docs/notifications.md).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

from cutter.core.errors import ErrorCode, InputError, one_line
from cutter.core.ids import check_run_id
from cutter.core.notices import Notice

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(hours=1)
ERROR_LIMIT = 300
# How many notices a listing (``cutter notifications``) shows: the newest, oldest first.
LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 200


class NotificationFilterInvalid(InputError):
    """``cutter notifications`` asked for a run or a count no listing has."""

    code = ErrorCode.NOTIFICATION_FILTER


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One notice to one endpoint (its URL): where its delivery stands."""

    notice_id: str
    endpoint: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_at: datetime
    last_error: str | None = None


class DueDelivery(msgspec.Struct, frozen=True, kw_only=True):
    notice: Notice
    delivery: Delivery


class NoticeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A notice in the outbox and its deliveries (none: no webhook wanted it, or not
    yet fanned out: ``dispatched`` False)."""

    notice: Notice
    dispatched: bool
    deliveries: tuple[Delivery, ...] = ()


def backoff(
    attempts: int, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP
) -> timedelta:
    """How long after its ``attempts``-th failed attempt a delivery is tried again:
    ``base`` doubled per attempt after the first, never more than ``cap``."""
    if attempts < 1:
        return timedelta(0)
    grown: timedelta = base * (2 ** min(attempts - 1, 32))
    return min(cap, grown)


def attempted(
    delivery: Delivery, *, ok: bool, error: str | None, now: datetime, max_attempts: int
) -> Delivery:
    """``delivery`` after one more attempt at ``now``: delivered when ``ok``; else
    pending again after ``backoff``, or failed once ``max_attempts`` have failed."""
    attempts = delivery.attempts + 1
    if ok:
        return msgspec.structs.replace(
            delivery, state=DeliveryState.DELIVERED, attempts=attempts, next_at=now, last_error=None
        )
    message = one_line(error or "failed", ERROR_LIMIT)
    if attempts >= max_attempts:
        return msgspec.structs.replace(
            delivery, state=DeliveryState.FAILED, attempts=attempts, next_at=now, last_error=message
        )
    return msgspec.structs.replace(
        delivery, attempts=attempts, next_at=now + backoff(attempts), last_error=message
    )


def with_state(records: Iterable[NoticeRecord], state: DeliveryState | None) -> list[NoticeRecord]:
    """The records a listing for ``state`` shows: every one (None), or those with a
    delivery in ``state``, with only those deliveries."""
    if state is None:
        return list(records)
    shown: list[NoticeRecord] = []
    for record in records:
        kept = tuple(d for d in record.deliveries if d.state is state)
        if kept:
            shown.append(msgspec.structs.replace(record, deliveries=kept))
    return shown


def check_listing(run_id: str | None, limit: int) -> tuple[str | None, int]:
    """The filter of a listing, checked: ``NotificationFilterInvalid`` saying why not."""
    if not 1 <= limit <= LIST_MAX_LIMIT:
        raise NotificationFilterInvalid(f"limit must be 1 to {LIST_MAX_LIMIT}, not {limit}")
    if run_id is not None:
        try:
            check_run_id(run_id)
        except InputError as exc:
            raise NotificationFilterInvalid(exc.message) from None
    return run_id, limit
