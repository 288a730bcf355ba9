"""``cutter`` subcommands that talk to a running daemon over its socket.

Each subcommand sends command frames (docs/protocol.md) and prints the reply: a
table for a person, or with ``--json`` the reply frame itself, one line, exactly
as the protocol encodes it. An ``Error`` reply exits 1 with ``CODE: message`` on
stderr (with ``--json`` the Error frame is on stdout too); no daemon on the
socket exits 2. Refusals the client makes itself (``E_RUN_NOT_AT_GATE``,
``APPROVAL_WRONG_GATE``, ``APPROVAL_STALE``, ``E_BAD_REQUEST_DIGEST``,
``E_REVIEW_DECISION_REQUIRED``, ``E_BAD_REPLY``) look the same as the daemon's.

``COMMANDS`` are the ones ``cutter.cli.main`` adds to the ``cutter`` group. Around them:

- ``cutter.cli.connect``: ``Endpoint`` (one connection, failures as exit codes) and
  the ``--socket``/``--json`` options;
- ``cutter.cli.render``: the tables and event lines a person reads;
- ``cutter.cli.approve``: ``approve_gate``, the approval logic ``scripts/approve``
  shares with ``cutter approve``, and ``reviewer_main``, the command it runs.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import click
import msgspec

from cutter.cli.approve import (
    ApprovalInput,
    approval_input,
    approval_options,
    approve_gate,
    asked_by,
    reviewer_main,
    stored_headline,
)
from cutter.cli.connect import ClientFailure, Endpoint, daemon_options, expect
from cutter.cli.outcome import finish
from cutter.cli.render import event_line, show_run
from cutter.core.errors import CutterError, ErrorCode
from cutter.core.ids import check_reason
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.principals import own_principal
from cutter.core.protocol import (
    AbortRun,
    Accepted,
    Event,
    KillSwitchState,
    Ping,
    Pong,
    Resume,
    RunInfo,
    SetKillSwitch,
    Shutdown,
    ShuttingDownReply,
    Start,
    StatusOf,
    Watch,
)
from cutter.core.states import TERMINAL, RunState
from cutter.daemon.client import Client

__all__ = ["COMMANDS", "login_name", "reviewer_main"]


def login_name() -> str:
    """The name the daemon will know this process by: its uid's login name (not
    $USER, which the daemon never sees), or ``uid:N`` without a password entry."""
    return own_principal()


# --- the subcommands ----------------------------------------------------------------------
def walk(target: Endpoint, command: Start | Resume, doing: str) -> None:
    """Send a command that walks a run: with ``wait`` off, say how to follow it;
    otherwise show the run at its next stop."""
    if not command.wait:
        accepted = target.request(command, Accepted)
        if target.as_json:
            target.frame(accepted)
        else:
            click.echo(f"{accepted.run_id} {doing}; follow it with: cutter watch {accepted.run_id}")
        return
    reply = target.request(command, RunInfo)
    show_run(target, reply)
    finish(reply.run, as_json=target.as_json)


@click.command()
@daemon_options
def ping(socket_path: Path, as_json: bool) -> None:
    """Check that a daemon answers, and which protocol it speaks."""
    target = Endpoint(socket_path, as_json)
    reply = target.request(Ping(), Pong)
    if as_json:
        target.frame(reply)
    else:
        click.echo(f"daemon on {socket_path} answers (protocol {reply.protocol})")


@click.command()
@daemon_options
@click.argument("doc_id")
@click.option("--live", is_flag=True, help="Mode.LIVE (the daemon must enable execution).")
@click.option("--by", default=login_name, show_default="login name", help="Who starts the run.")
@click.option("--no-wait", is_flag=True, help="Answer at once; follow with status or watch.")
def start(
    socket_path: Path, as_json: bool, doc_id: str, live: bool, by: str, no_wait: bool
) -> None:
    """Start a run cutting DOC_ID; by default wait for its first stop (a gate)."""
    target = Endpoint(socket_path, as_json)
    command = Start(
        doc_id=doc_id, started_by=by, mode=Mode.LIVE if live else Mode.DRY_RUN, wait=not no_wait
    )
    walk(target, command, "started")


@click.command()
@daemon_options
@click.argument("run_id")
def status(socket_path: Path, as_json: bool, run_id: str) -> None:
    """One run: its state, its stop, and what its gate waits for."""
    target = Endpoint(socket_path, as_json)
    show_run(target, target.request(StatusOf(run_id=run_id), RunInfo))


@click.command()
@approval_options
@click.option("--no-resume", is_flag=True, help="Only store the approval; resume later.")
@click.option(
    "--dsn",
    default=None,
    help="Insert the decision into PostgreSQL as your own login (a member of "
    "cutter_reviewer), not through the daemon; --approver, if given, must be that login. The run "
    "is not resumed: cutter resume RUN --approval <the printed id>.",
)
@daemon_options
def approve(
    socket_path: Path,
    as_json: bool,
    run_id: str,
    gate: str,
    request_digest: str | None,
    approver: str | None,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
    sign_with: Path | None,
    no_resume: bool,
    dsn: str | None,
) -> None:
    """Approve (or --reject) the request RUN_ID waits on at GATE, and only that one."""
    target = Endpoint(socket_path, as_json)
    given = approval_input(
        run_id,
        gate,
        request_digest,
        approver,
        reason,
        reject,
        review_decision_id,
        not no_resume and dsn is None,
        sign_with,
    )
    if dsn is not None:
        approve_through_database(target, dsn, given)
        return
    reply = target.call(lambda client: approve_gate(client, given))
    show_run(target, reply, stored_headline(reply, given))
    finish(reply.run, asked_by(given), as_json=as_json)


def approve_through_database(target: Endpoint, dsn: str, given: ApprovalInput) -> None:
    """``cutter approve --dsn``: the decision stored by the database as the login's."""
    from cutter.cli.approve_pg import approve_in_database  # asyncpg only when asked for

    if given.sign_with is not None:
        target.fail(
            ClientFailure(
                ErrorCode.USAGE, "--sign-with and --dsn do not go together: choose one proof"
            )
        )
    try:
        stored = anyio.run(approve_in_database, dsn, given)
    except ClientFailure as exc:
        target.fail(exc)
    except CutterError as exc:
        target.fail(ClientFailure(exc.code, exc.message))
    verb = "approved" if given.decision is Decision.APPROVE else "rejected"
    line = (
        f"{stored.principal} {verb} (stamped by the database): stored as "
        f"{stored.approval_kb_id}; resume with: cutter resume {given.run_id} "
        f"--approval {stored.approval_kb_id}"
    )
    if target.as_json:
        click.echo(
            msgspec.json.encode(
                {
                    "approval_kb_id": stored.approval_kb_id,
                    "principal": stored.principal,
                    "issued_at": stored.issued_at,
                }
            ).decode()
        )
    else:
        click.echo(line)


@click.command()
@daemon_options
@click.argument("run_id")
@click.option("--approval", "approval_kb_id", default=None, help="The approval's KB id.")
@click.option("--no-wait", is_flag=True, help="Answer at once; follow with status or watch.")
def resume(
    socket_path: Path, as_json: bool, run_id: str, approval_kb_id: str | None, no_wait: bool
) -> None:
    """Continue a paused or halted run (at a gate: with a stored approval)."""
    target = Endpoint(socket_path, as_json)
    command = Resume(run_id=run_id, approval_kb_id=approval_kb_id, wait=not no_wait)
    walk(target, command, "resuming")


@click.command()
@daemon_options
@click.argument("run_id")
@click.option("--reason", required=True, help="Why the run is ended.")
@click.option("--by", default=login_name, show_default="login name", help="Who ends it.")
def abort(socket_path: Path, as_json: bool, run_id: str, reason: str, by: str) -> None:
    """End a run (a live run's writes are rolled back)."""
    target = Endpoint(socket_path, as_json)
    reply = target.request(AbortRun(run_id=run_id, reason=reason, by=by), RunInfo)
    show_run(target, reply)
    finish(reply.run, RunState.ABORTED, as_json=as_json)


class _Watcher(Client):
    """A client whose watch is subscribed before the first event is awaited."""

    async def subscribe(self, command: Watch) -> None:
        await self._send(command)

    async def next_event(self) -> Event:
        return expect(await self._receive(), Event)


@click.command()
@daemon_options
@click.argument("run_id", required=False)
def watch(socket_path: Path, as_json: bool, run_id: str | None) -> None:
    """Print each run transition as it happens (one run, or every run) until Ctrl-C.

    Given RUN_ID, stop when that run reaches a final state (or is in one already).
    """
    target = Endpoint(socket_path, as_json)

    def emit(event: Event) -> None:
        if as_json:
            target.frame(event)
        else:
            click.echo(event_line(event))

    async def follow(status_client: Client) -> None:
        watcher = _Watcher(socket_path)
        async with watcher:
            await watcher.subscribe(Watch(run_id=run_id))
            # Asked after the watch is sent, so a final state is seen in one or the other.
            if run_id is not None:
                run = expect(await status_client.request(StatusOf(run_id=run_id)), RunInfo).run
                if run.state in TERMINAL:
                    click.echo(f"{run_id} is {run.state.value}", err=True)
                    return
            click.echo(f"watching {run_id or 'every run'} on {socket_path}; Ctrl-C stops", err=True)
            while True:
                event = await watcher.next_event()
                emit(event)
                if run_id is not None and event.event == "run_state_changed":
                    to_state = event.detail.get("to_state")
                    if to_state in {s.value for s in TERMINAL}:
                        return

    target.call(follow)


@click.group("kill-switch")
def kill_switch() -> None:
    """Engage or release the kill switch: live runs halt at their next phase boundary."""


def _show_switch(target: Endpoint, reply: KillSwitchState) -> None:
    if target.as_json:
        target.frame(reply)
    else:
        click.echo(f"kill switch {'ENGAGED' if reply.engaged else 'released'}")


@kill_switch.command("engage")
@daemon_options
@click.option("--reason", required=True, help="Why; recorded with the switch.")
def kill_switch_engage(socket_path: Path, as_json: bool, reason: str) -> None:
    """Halt live runs at their next phase boundary (dry runs go on)."""
    target = Endpoint(socket_path, as_json)
    try:
        check_reason(reason)
    except CutterError as exc:  # refused here too: nothing is sent
        target.fail(ClientFailure(exc.code, exc.message))
    _show_switch(target, target.request(SetKillSwitch(engage=True, reason=reason), KillSwitchState))


@kill_switch.command("release")
@daemon_options
def kill_switch_release(socket_path: Path, as_json: bool) -> None:
    """Release the kill switch; halted runs stay halted until resumed."""
    target = Endpoint(socket_path, as_json)
    _show_switch(target, target.request(SetKillSwitch(engage=False), KillSwitchState))


@click.command()
@daemon_options
def shutdown(socket_path: Path, as_json: bool) -> None:
    """Ask the daemon to drain (walks pause at their next phase) and exit."""
    target = Endpoint(socket_path, as_json)
    reply = target.request(Shutdown(), ShuttingDownReply)
    if as_json:
        target.frame(reply)
    else:
        click.echo(f"daemon on {socket_path} is shutting down")


COMMANDS: tuple[click.Command, ...] = (
    ping,
    start,
    status,
    approve,
    resume,
    abort,
    watch,
    kill_switch,
    shutdown,
)
