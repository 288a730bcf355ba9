"""The daemon's answer to ``notifications`` (``cutter notifications``): the outbox as
the run store keeps it, filtered (``cutter.core.outbox.with_state``)."""

from __future__ import annotations

from cutter.core.outbox import check_listing, with_state
from cutter.core.ports import Outbox
from cutter.core.protocol import ListNotifications, NotificationList


async def list_notifications(store: Outbox, command: ListNotifications) -> NotificationList:
    run_id, limit = check_listing(command.run_id, command.limit)
    records = await store.notifications(run_id, limit)
    return NotificationList(id=command.id, notices=tuple(with_state(records, command.state)))
