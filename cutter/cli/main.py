"""The ``cutter`` command line."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import click
import structlog

from cutter.cli.common import (
    DSN_HELP,
    failed,
    run_command,
    store_options,
)
from cutter.cli.doctor_command import COMMANDS as DOCTOR_COMMANDS
from cutter.cli.ledger import COMMANDS as LEDGER_COMMANDS
from cutter.cli.notifications import COMMANDS as NOTIFICATION_COMMANDS
from cutter.cli.outcome import EXIT_STATUS_HELP
from cutter.cli.plan import COMMANDS as PLAN_COMMANDS
from cutter.cli.policy import COMMANDS as POLICY_COMMANDS
from cutter.cli.remote import COMMANDS as CLIENT_COMMANDS
from cutter.cli.restore import COMMANDS as RESTORE_COMMANDS
from cutter.cli.review import COMMANDS as REVIEW_COMMANDS
from cutter.cli.runs import COMMANDS as RUNS_COMMANDS
from cutter.core.errors import CutterError
from cutter.daemon.limits import (
    DEFAULT_BUFFER_BUDGET,
    DEFAULT_FRAME_SECONDS,
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_CONNECTIONS,
    MIN_BUFFER_BUDGET,
    ConnectionLimits,
)
from cutter.runtime.logs import TRANSITION_EVENTS, configure_console


def _transition_line(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    name = event.pop("event")
    if name not in TRANSITION_EVENTS:
        raise structlog.DropEvent
    subject = event.pop("to_state", None) or event.pop("phase", None) or event.pop("gate", "")
    return f"  {name:<18} {subject}"


def configure_transitions() -> None:
    """Print one short line per run transition; drop everything else."""
    structlog.configure(
        processors=[_transition_line],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


@click.group(epilog=EXIT_STATUS_HELP)
@click.version_option(package_name="iu-cutter", prog_name="cutter")
def main() -> None:
    """Cut long knowledge-base documents into addressable information units, safely."""
    configure_console()


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".cutter-demo"),
    show_default=True,
    help="Where the embedded database (cutter.sqlite3) is written.",
)
@click.option("--live", is_flag=True, help="Enable execution and commit to the target.")
@click.option("--dsn", default=None, help="Run on PostgreSQL instead. " + DSN_HELP)
def demo(state_dir: Path, live: bool, dsn: str | None) -> None:
    """Cut the bundled sample charter through both gates with scripted approvals."""
    from cutter.cli.demo import run_demo

    configure_transitions()
    sidecar, ledger_ok = run_command(run_demo, state_dir, live, dsn)
    if sidecar.stop_code is not None or not ledger_ok:
        sys.exit(1)


@click.command()
@store_options("The embedded database cutter.sqlite3 (without --dsn) and daemon.sock.")
@click.option("--stdio", is_flag=True, help="Serve frames on stdin/stdout instead of a socket.")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON log lines to this file (required with --stdio); a terminal on stderr "
    "still gets one short line per transition. Without it: short lines on a terminal "
    "stdout, JSON lines on any other stdout.",
)
@click.option(
    "--allow-self-approval",
    is_flag=True,
    help="Let a run's starter approve it (the default policy's, until one is set).",
)
@click.option(
    "--required-approvals",
    type=click.IntRange(1, 10),
    default=1,
    show_default=True,
    help="Distinct approvers per gate (the default policy's, until one is set).",
)
@click.option(
    "--approval-ttl",
    type=click.IntRange(60, 30 * 24 * 3600),
    default=24 * 3600,
    show_default=True,
    help="Seconds an approval stays good (the default policy's ttl_seconds, both gates, "
    "until one is set; a set policy says it per gate).",
)
@click.option("--enable-execution", is_flag=True, help="Allow Mode.LIVE runs.")
@click.option(
    "--control-dsn",
    default=None,
    help="With --dsn: a login in cutter_control, for what the gate trusts (approvals it "
    "consumes and attests, the policy, the kill switch). Without it the --dsn login must "
    "hold both roles (weaker).",
)
@click.option(
    "--socket-group",
    default=None,
    help="Open the socket (0660) to this group's members, who connect as themselves.",
)
@click.option(
    "--http",
    "http",
    default=None,
    metavar="HOST:PORT",
    help="Serve the review page on this loopback address (PORT 0: any free port; "
    "the log's http_serving event names it).",
)
@click.option(
    "--link-ttl",
    type=click.IntRange(60, 24 * 3600),
    default=15 * 60,
    show_default=True,
    help="Seconds a review link minted by `cutter review RUN --web` lives.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 1 << 20),
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    help="Connections served at once; one more is refused (E_TOO_MANY_CONNECTIONS).",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_IDLE_SECONDS,
    show_default=True,
    help="Seconds a connection may send nothing between commands (a watch is never idle).",
)
@click.option(
    "--frame-timeout",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_FRAME_SECONDS,
    show_default=True,
    help="Seconds a frame may take from its first byte to its newline.",
)
@click.option(
    "--buffer-budget",
    type=click.IntRange(MIN_BUFFER_BUDGET),
    default=DEFAULT_BUFFER_BUDGET,
    show_default=True,
    help="Bytes of unfinished frames held across all connections (E_BUFFER_BUDGET_EXCEEDED).",
)
@click.option(
    "--hooks-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Hooks named for the events they run at (default: STATE_DIR/hooks); "
    "see docs/operations.md, Hooks.",
)
def daemon(
    state_dir: Path,
    dsn: str | None,
    stdio: bool,
    log_path: Path | None,
    allow_self_approval: bool,
    required_approvals: int,
    approval_ttl: int,
    enable_execution: bool,
    control_dsn: str | None,
    socket_group: str | None,
    http: str | None,
    link_ttl: int,
    max_connections: int,
    idle_timeout: float,
    frame_timeout: float,
    buffer_budget: int,
    hooks_dir: Path | None,
) -> None:
    """Run the daemon: commands over a Unix socket (or stdio), many runs at once.

    Each command acts as the principal the transport proved: the socket peer's login
    name, or on --stdio the daemon's own. See `cutter policy show`."""
    from cutter.daemon.main import DaemonOptions, run

    if stdio and log_path is None:
        raise click.UsageError("--stdio needs --log FILE: stdout carries the protocol")
    if stdio and socket_group is not None:
        raise click.UsageError("--socket-group is for the socket, not --stdio")
    if control_dsn is not None and dsn is None:
        raise click.UsageError("--control-dsn goes with --dsn (PostgreSQL)")
    options = DaemonOptions(
        state_dir=state_dir,
        dsn=dsn,
        control_dsn=control_dsn,
        stdio=stdio,
        log_path=log_path,
        allow_self_approval=allow_self_approval,
        required_approvals=required_approvals,
        approval_ttl_seconds=approval_ttl,
        enable_execution=enable_execution,
        socket_group=socket_group,
        http=http,
        link_ttl_seconds=link_ttl,
        limits=ConnectionLimits(max_connections, idle_timeout, frame_timeout, buffer_budget),
        hooks_dir=hooks_dir,
    )
    try:
        sys.exit(run(options))
    except CutterError as exc:
        raise failed(exc) from None


@click.group()
def db() -> None:
    """Manage the PostgreSQL schema, roles and source documents."""


@db.command()
@click.option("--dsn", required=True, help=DSN_HELP)
def migrate(dsn: str) -> None:
    """Apply every schema migration not yet applied (safe to repeat, or run concurrently)."""
    from cutter.stores.pg.migrate import migrate as run_migrations
    from cutter.stores.pg.migrate import schema_version

    applied = run_command(run_migrations, dsn)
    version = run_command(schema_version, dsn)
    click.echo(f"applied {applied or 'nothing'}; schema version {version}")


@db.command()
@click.option("--dsn", required=True, help=DSN_HELP)
@click.option("--writer", default="cutter_writer", show_default=True)
@click.option("--reader", default="cutter_reader", show_default=True)
@click.option("--login", is_flag=True, help="Create the roles with LOGIN (default NOLOGIN).")
def roles(dsn: str, writer: str, reader: str, login: bool) -> None:
    """Create the least-privilege writer, the control role (cutter_control: what the gate
    trusts), the reader and the reviewer group, or re-grant them exactly."""
    from cutter.stores.pg.roles import CONTROL, REVIEWER, create_roles

    run_command(lambda: create_roles(dsn, writer=writer, reader=reader, login=login))
    click.echo(
        f"roles {writer} (writer), {CONTROL} (control), {reader} (reader) and {REVIEWER}"
        " (reviewers) hold exactly their grants"
    )


@click.command("add-document")
@store_options("The embedded stores' directory (ignored with --dsn).")
@click.argument("doc_id")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def add_document(state_dir: Path, dsn: str | None, doc_id: str, path: Path) -> None:
    """Store FILE's exact bytes (at most 16 MiB) as DOC_ID's current source version.

    Safe while a daemon owns the state directory: SQLite's locks order the two
    processes' writes, the daemon's runs pinned the version they cut, and a gate
    stops a run whose document changed (STOP_DRIFT)."""
    from cutter.core.doc_size import read_document
    from cutter.core.ids import check_doc_id
    from cutter.discovery.content import require_text

    data = b""

    async def add() -> str:
        nonlocal data
        checked = check_doc_id(doc_id)
        data = await anyio.to_thread.run_sync(read_document, path)  # E_DOCUMENT_TOO_LARGE
        require_text(data)  # binary or UTF-16: E_DOCUMENT_NOT_TEXT, nothing stored
        if dsn is None:
            from cutter.assembly.embedded import open_state_dir
            from cutter.stores.sqlite.target import SqliteSources

            # One transaction of the database; a running daemon's writes and this
            # one take SQLite's write lock in turn (the other waits, up to a limit).
            async with open_state_dir(state_dir, create=True) as db:
                return (await SqliteSources(db).publish(checked, data)).sv_id
        from cutter.stores.pg.connect import connect
        from cutter.stores.pg.target import PgSourceRepository

        conn = await connect(dsn)
        try:
            return (await PgSourceRepository(conn).publish(checked, data)).sv_id
        finally:
            await conn.close()

    click.echo(f"{doc_id} is now at version {run_command(add)} ({len(data)} bytes)")


COMMANDS: tuple[click.Command, ...] = (demo, daemon, db, add_document)

# One registration style: every module of commands exposes COMMANDS, added here.
for _command in (
    *COMMANDS,
    *CLIENT_COMMANDS,
    *REVIEW_COMMANDS,
    *RUNS_COMMANDS,
    *POLICY_COMMANDS,
    *DOCTOR_COMMANDS,
    *LEDGER_COMMANDS,
    *PLAN_COMMANDS,
    *NOTIFICATION_COMMANDS,
    *RESTORE_COMMANDS,
):
    main.add_command(_command)
