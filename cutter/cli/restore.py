"""``cutter revert RUN``, ``cutter restore DOC --backup ID``, ``cutter backups DOC``
(docs/revert.md).

Without ``--socket`` they work on the embedded stores of ``--state-dir`` (the
default state directory), owning it for the command as a daemon would (a running
daemon there refuses them: exit 3; use ``--socket``); a revert or a restore walks
to its first stop, SG_1, where a reviewer approves it through the daemon as any
run. With ``--socket`` the daemon does the same. A refusal (``E_REVERT_REFUSED``,
``E_NOT_REVERTIBLE``, ``E_BACKUP_UNKNOWN``, a bad id) changes nothing and exits 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from cutter.cli.common import StateDirOwned, run_command
from cutter.cli.connect import Endpoint
from cutter.cli.outcome import finish
from cutter.cli.remote import login_name
from cutter.cli.render import show_run
from cutter.core.errors import AccessDenied, InputError
from cutter.core.mode import Mode, enable_execution
from cutter.core.policy import listed
from cutter.core.principals import Caller, acting, own_principal
from cutter.core.protocol import (
    Accepted,
    BackupList,
    ListBackups,
    Restore,
    Revert,
    RunInfo,
    RunSummary,
)
from cutter.core.restoring import SavedBackup
from cutter.core.state_dir import DEFAULT as DEFAULT_STATE_DIR
from cutter.core.state_dir import StateDir
from cutter.walk.runner import Runner

F = TypeVar("F", bound=Callable[..., Any])


def _where(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON line.")(func)
    func = click.option(
        "--socket",
        "socket_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Go through the daemon on this Unix socket instead of the embedded stores.",
    )(func)
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_STATE_DIR.root,
        show_default=True,
        help="The embedded stores' directory (without --socket).",
    )(func)


def _starting(func: F) -> F:
    func = click.option("--no-wait", is_flag=True, help="With --socket: answer at once.")(func)
    func = click.option("--by", default=login_name, show_default="login name", help="Who starts.")(
        func
    )
    return click.option("--live", is_flag=True, help="Mode.LIVE: enable execution and commit.")(
        func
    )


async def _embedded(
    state_dir: Path, by: str, doc_of: Callable[[Runner], Awaitable[str]], start: Any
) -> RunSummary:
    """Own the state directory, check the starter against the stored policy, start.
    A directory with no database is refused, nothing made (there is nothing to revert)."""
    from cutter.assembly.embedded import config_on, open_state_dir
    from cutter.stores.owner import claim
    from cutter.walk.policy_book import current, default_policy

    if not StateDir(state_dir).database.is_file():
        raise InputError(f"no database under {state_dir}: nothing was stored there yet")
    with claim(state_dir, "cutter revert/restore"):
        async with open_state_dir(state_dir) as db, Runner(config_on(db)) as runner:
            config = runner.config
            owner = own_principal()
            policy = (await current(config.kb, default_policy(config.policy, owner))).policy
            started_by = acting(policy, Caller(principal=owner, peer="embedded"), "by", by)
            doc_id = await doc_of(runner)
            if not listed(started_by, policy.starters_for(doc_id)):
                raise AccessDenied(f"{started_by} may not start runs of {doc_id}")
            sidecar = await start(runner, started_by)
            return RunSummary.of(sidecar)


def _run_embedded(state_dir: Path, by: str, doc_of: Any, start: Any) -> RunSummary:
    """``_embedded``; refused because a daemon owns the directory, say how to go
    through it instead (the refusal alone sends the operator looking)."""
    try:
        return run_command(_embedded, state_dir, by, doc_of, start)
    except StateDirOwned as exc:
        socket = StateDir(state_dir).socket
        if not socket.exists():
            raise
        raise StateDirOwned(f"{exc.message}; a daemon serves it: add --socket {socket}") from None


def _through_daemon(target: Endpoint, command: Revert | Restore) -> None:
    """As ``cutter start`` does: with ``wait`` off, say how to follow the run."""
    if not command.wait:
        accepted = target.request(command, Accepted)
        if target.as_json:
            target.frame(accepted)
        else:
            click.echo(f"{accepted.run_id} started; follow it with: cutter watch {accepted.run_id}")
        return
    reply = target.request(command, RunInfo)
    show_run(target, reply)
    finish(reply.run, as_json=target.as_json)


def _show(state_dir: Path, as_json: bool, run: RunSummary) -> None:
    target = Endpoint(StateDir(state_dir).socket, as_json)  # only prints: no connection
    show_run(target, RunInfo(run=run))
    finish(run, as_json=as_json)


@click.command()
@click.argument("run_id")
@_starting
@_where
def revert(
    run_id: str,
    live: bool,
    by: str,
    no_wait: bool,
    state_dir: Path,
    socket_path: Path | None,
    as_json: bool,
) -> None:
    """Start a run putting RUN's document's rows back as they were before RUN (a
    closed-out live run whose document has not changed since); walk it to SG_1."""
    mode = Mode.LIVE if live else Mode.DRY_RUN
    if socket_path is not None:
        command = Revert(run_id=run_id, started_by=by, mode=mode, wait=not no_wait)
        _through_daemon(Endpoint(socket_path, as_json), command)
        return
    if live:
        enable_execution()  # the operator asked for it with --live

    async def doc_of(runner: Runner) -> str:
        return (await runner.status(run_id)).doc_id

    async def start(runner: Runner, started_by: str) -> Any:
        return await runner.revert(run_id, mode, started_by=started_by)

    _show(state_dir, as_json, _run_embedded(state_dir, by, doc_of, start))


@click.command()
@click.argument("doc_id")
@click.option("--backup", "backup_id", required=True, help="The backup id (cutter backups DOC).")
@_starting
@_where
def restore(
    doc_id: str,
    backup_id: str,
    live: bool,
    by: str,
    no_wait: bool,
    state_dir: Path,
    socket_path: Path | None,
    as_json: bool,
) -> None:
    """Start a run putting DOC_ID's rows back as a stored backup holds them; walk it
    to SG_1."""
    mode = Mode.LIVE if live else Mode.DRY_RUN
    if socket_path is not None:
        command = Restore(
            doc_id=doc_id, backup_id=backup_id, started_by=by, mode=mode, wait=not no_wait
        )
        _through_daemon(Endpoint(socket_path, as_json), command)
        return
    if live:
        enable_execution()

    async def doc_of(runner: Runner) -> str:
        return doc_id

    async def start(runner: Runner, started_by: str) -> Any:
        return await runner.restore(doc_id, backup_id, mode, started_by=started_by)

    _show(state_dir, as_json, _run_embedded(state_dir, by, doc_of, start))


async def _backups(state_dir: Path, doc_id: str) -> list[SavedBackup]:
    """Read beside a daemon, as ``verify-ledger`` does: nothing is written."""
    from cutter.assembly.embedded import config_on, open_state_dir

    async with open_state_dir(state_dir) as db, Runner(config_on(db)) as runner:
        return await runner.backups(doc_id)


@click.command()
@click.argument("doc_id")
@_where
def backups(doc_id: str, state_dir: Path, socket_path: Path | None, as_json: bool) -> None:
    """DOC_ID's stored backups, oldest first: id, rows (active), when, which run saved it."""
    if socket_path is not None:
        listed_ = Endpoint(socket_path, as_json).request(ListBackups(doc_id=doc_id), BackupList)
        found = list(listed_.backups)
    else:
        found = run_command(_backups, state_dir, doc_id)
        listed_ = BackupList(doc_id=doc_id, backups=tuple(found))
    if as_json:
        click.echo(msgspec.json.encode(listed_).decode())
        return
    if not found:
        click.echo(f"no backups of {doc_id}")
        return
    for item in found:
        b = item.backup
        runs = ", ".join(item.saved_by) or "-"
        saved = b.saved_at.isoformat(timespec="seconds")
        click.echo(f"{b.backup_id}  {b.rows} rows ({b.active} active)  {saved}  saved by {runs}")


COMMANDS: tuple[click.Command, ...] = (revert, restore, backups)
