"""What every ``cutter`` command module shares: the exit codes of a typed error, the
store options (``--state-dir``, ``--dsn``) and running a command's async work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from cutter.core.errors import CutterError, StateDirBusy
from cutter.core.secrets import scrub
from cutter.core.state_dir import DEFAULT as DEFAULT_STATE_DIR

EXIT_ERROR = 1  # a typed error (CODE: message on stderr)
EXIT_STATE_DIR_BUSY = 3  # another live process owns the state directory, or the --http port
# (click uses 2)


class CommandFailed(click.ClickException):
    """One ``Error: CODE: message`` line on stderr and exit code 1; never a traceback."""

    exit_code = EXIT_ERROR


class StateDirOwned(CommandFailed):
    exit_code = EXIT_STATE_DIR_BUSY


def failed(exc: CutterError) -> CommandFailed:
    busy = isinstance(exc, StateDirBusy) or exc.code == "E_HTTP_PORT_BUSY"
    kind = StateDirOwned if busy else CommandFailed
    return kind(scrub(f"{exc.code}: {exc.message}"))  # never a DSN's password


DSN_HELP = (
    "PostgreSQL DSN: a postgresql:// URI or libpq key=value pairs (host, port, dbname, user,"
    " password, sslmode, ...); the login must own the schema. Prefer PGPASSWORD or"
    " ~/.pgpass to a password on the command line."
)
F = TypeVar("F", bound=Callable[..., Any])


def store_options(state_dir_help: str) -> Callable[[F], F]:
    """--state-dir (the embedded stores) and --dsn (PostgreSQL instead)."""

    def decorate(func: F) -> F:
        func = click.option(
            "--dsn", default=None, help="Use PostgreSQL instead of SQLite. " + DSN_HELP
        )(func)
        return click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=DEFAULT_STATE_DIR.root,
            show_default=True,
            help=state_dir_help,
        )(func)

    return decorate


T = TypeVar("T")


def run_command(func: Callable[..., Awaitable[T]], *args: object) -> T:
    """Run ``func`` and turn a CutterError into a one-line error and exit code 1 (3 when
    the state directory is owned by another process)."""
    try:
        return anyio.run(func, *args)
    except CutterError as exc:
        raise failed(exc) from None
