"""``cutter notifications``: the outbox's notices and where each webhook delivery stands.

Through the daemon (``--socket``, the ``notifications`` frame), or with ``--state-dir``
straight from the embedded database (read beside a running daemon, or without one). One
line per delivery: the notice (id, event, run, when), the endpoint, its state (pending,
delivered, failed), the attempts so far, when the next is due, the last error. A notice
no webhook wanted shows once, with ``-`` for its delivery (docs/notifications.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import click

from cutter.cli.common import failed
from cutter.cli.connect import Endpoint, daemon_options
from cutter.core.errors import CutterError
from cutter.core.outbox import (
    LIST_DEFAULT_LIMIT,
    LIST_MAX_LIMIT,
    DeliveryState,
    NoticeRecord,
    check_listing,
    with_state,
)
from cutter.core.protocol import ListNotifications, NotificationList


@click.command()
@daemon_options
@click.option(
    "--state",
    type=click.Choice([s.value for s in DeliveryState], case_sensitive=False),
    default=None,
    help="Only deliveries in this state.",
)
@click.option("--run", "run_id", default=None, help="Only the notices of this run.")
@click.option(
    "--limit",
    type=int,
    default=LIST_DEFAULT_LIMIT,
    show_default=True,
    help=f"The newest notices to show (at most {LIST_MAX_LIMIT}).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read the embedded database under this directory instead of asking the daemon.",
)
def notifications(
    socket_path: Path,
    as_json: bool,
    state: str | None,
    run_id: str | None,
    limit: int,
    state_dir: Path | None,
) -> None:
    """Notices and their webhook deliveries: pending, delivered, failed."""
    chosen = None if state is None else DeliveryState(state.lower())
    command = ListNotifications(state=chosen, run_id=run_id, limit=limit)
    target = Endpoint(socket_path, as_json)
    if state_dir is None:
        reply = target.request(command, NotificationList)
    else:
        try:
            reply = anyio.run(_embedded, state_dir, command)
        except CutterError as exc:
            raise failed(exc) from None
    if as_json:
        target.frame(reply)
        return
    for line in render(reply.notices):
        click.echo(line)


async def _embedded(state_dir: Path, command: ListNotifications) -> NotificationList:
    from cutter.assembly.embedded import open_state_dir
    from cutter.stores.sqlite.records import SqliteRunStore

    run_id, limit = check_listing(command.run_id, command.limit)  # before opening anything
    async with open_state_dir(state_dir) as db:
        records = await SqliteRunStore(db).notifications(run_id, limit)
    return NotificationList(notices=tuple(with_state(records, command.state)))


def render(records: Sequence[NoticeRecord]) -> list[str]:
    if not records:
        return ["no notifications"]
    lines = ["NOTICE  EVENT  RUN  AT  ENDPOINT  STATE  ATTEMPTS  NEXT  ERROR"]
    for record in records:
        notice = record.notice
        head = f"{notice.notice_id}  {notice.event}  {notice.run_id}  {notice.at.isoformat()}"
        if not record.deliveries:
            lines.append(f"{head}  -  {'no webhook' if record.dispatched else 'undispatched'}")
        for d in record.deliveries:
            due = d.next_at.isoformat() if d.state is DeliveryState.PENDING else "-"
            lines.append(
                f"{head}  {d.endpoint}  {d.state.value}  {d.attempts}  {due}  {d.last_error or '-'}"
            )
    return lines


COMMANDS: tuple[click.Command, ...] = (notifications,)
