"""``cutter`` subcommands that talk to a running daemon over its socket.

Each subcommand sends command frames (docs/protocol.md) and prints the reply: a
table for a person, or with ``--json`` the reply frame itself, one line, exactly
as the protocol encodes it. An ``Error`` reply exits 1 with ``CODE: message`` on
stderr (with ``--json`` the Error frame is on stdout too); no daemon on the
socket exits 2. Refusals the client makes itself (``E_RUN_NOT_AT_GATE``,
``E_REVIEW_DECISION_REQUIRED``, ``E_BAD_REPLY``) look the same as the daemon's.

``register(group)`` attaches them to the ``cutter`` click group; ``approve_gate``
is the approval logic ``scripts/approve`` shares with ``cutter approve``.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from cutter.client import Client, DaemonUnavailable
from cutter.kbdocs import Decision
from cutter.mode import Mode
from cutter.protocol import (
    AbortRun,
    Accepted,
    AnyCommand,
    AnyReply,
    ApprovalStored,
    Error,
    Event,
    KillSwitchState,
    ListRuns,
    Ping,
    Pong,
    Reply,
    Resume,
    RunInfo,
    RunList,
    RunSummary,
    SetKillSwitch,
    Shutdown,
    ShuttingDown,
    Start,
    StatusOf,
    SubmitApproval,
    Watch,
    encode,
)
from cutter.states import TERMINAL, RunState
from cutter.walk import Gate

DEFAULT_SOCKET = Path(".cutter/daemon.sock")
EXIT_REFUSED = 1  # the daemon (or this client) answered with an error
EXIT_UNREACHABLE = 2  # no daemon on the socket, or it hung up
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
DIGEST_PREFIX = 16
NONCE_PREFIX = 8

R = TypeVar("R", bound=Reply)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# --- errors ------------------------------------------------------------------------
class ClientFailure(click.ClickException):
    """A one-line ``CODE: message`` on stderr and exit code 1; never a traceback."""

    exit_code = EXIT_REFUSED

    def __init__(self, code: str, message: str, *, error_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.error_id = error_id

    def frame(self) -> Error:
        return Error(code=self.code, message=self.message, error_id=self.error_id)

    def format_message(self) -> str:
        suffix = f" (error id {self.error_id})" if self.error_id else ""
        return f"{self.code}: {self.message}{suffix}"

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class Unreachable(ClientFailure):
    """No daemon answers on the socket, or it hung up without a reply: exit 2."""

    exit_code = EXIT_UNREACHABLE


def _expect(reply: AnyReply, kind: type[R]) -> R:
    """The reply if it is a ``kind``; an Error reply becomes a ClientFailure."""
    if isinstance(reply, kind):
        return reply
    if isinstance(reply, Error):
        raise ClientFailure(reply.code, reply.message, error_id=reply.error_id)
    raise ClientFailure(
        "E_BAD_REPLY", f"expected a {kind.__name__} reply, got {type(reply).__name__}"
    )


# --- talking to the daemon ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """Where the daemon is and how to print what it says."""

    socket: Path
    as_json: bool

    def call(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work`` on one connection; any failure becomes a ClientFailure."""

        async def session() -> T:
            async with Client(self.socket) as client:
                return await work(client)

        try:
            return anyio.run(session)
        except ClientFailure as exc:
            self.fail(exc)
        except DaemonUnavailable as exc:
            self.fail(self.unreachable(exc))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.fail(ClientFailure("E_BAD_REPLY", f"the daemon sent a frame I cannot read: {exc}"))
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)

    def request(self, command: AnyCommand, kind: type[R]) -> R:
        async def one(client: Client) -> R:
            return _expect(await client.request(command), kind)

        return self.call(one)

    def unreachable(self, exc: DaemonUnavailable) -> ClientFailure:
        where = "" if str(self.socket) in exc.message else f" ({self.socket})"
        return Unreachable(
            exc.code,
            f"{exc.message}{where}; is `cutter daemon` running? (--socket or CUTTER_SOCKET)",
        )

    def fail(self, exc: ClientFailure) -> NoReturn:
        if self.as_json:
            self.frame(exc.frame())
        raise exc

    def frame(self, reply: Reply) -> None:
        """The frame, one line, exactly as the protocol encodes it."""
        click.echo(encode(reply).decode().rstrip("\n"))


def console() -> Console:
    """Tables on stdout; off a terminal wide enough that a run id never wraps."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def daemon_options(func: F) -> F:
    """``--socket`` and ``--json``, on every subcommand that talks to the daemon."""
    func = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the reply frame as one JSON line (the protocol's own encoding).",
    )(func)
    func = click.option(
        "--socket",
        "socket_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_SOCKET,
        envvar="CUTTER_SOCKET",
        show_default=True,
        show_envvar=True,
        help="The daemon's Unix socket (<state-dir>/daemon.sock).",
    )(func)
    return func


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (containers)
        return "operator"


# --- rendering ---------------------------------------------------------------------------
def _ago(when: datetime, now: datetime | None = None) -> str:
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _when(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _prefix(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size] + "…"


def run_table(run: RunSummary, *, full: bool = False) -> Table:
    """One run as key/value rows, with what its gate waits for; ``full`` digests."""
    table = Table(show_header=False, box=None, show_edge=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    stop = run.stop_code or "-"
    if run.stop_message:
        stop = f"{stop}: {run.stop_message}"
    rows = [
        ("run", run.run_id),
        ("document", run.doc_id),
        ("mode", run.mode.value),
        ("state", run.state.value),
        ("started by", run.started_by),
        ("phases passed", str(run.phases_passed)),
        ("stop", stop),
        ("updated", f"{_when(run.updated_at)} ({_ago(run.updated_at)})"),
    ]
    if (wait := run.waiting) is not None:
        rows += [
            ("waits at", f"{wait.gate.value} since {_when(wait.since)} ({_ago(wait.since)})"),
            ("request", wait.request_kb_id),
            (
                "request digest",
                wait.request_digest if full else _prefix(wait.request_digest, DIGEST_PREFIX),
            ),
            ("nonce", wait.nonce if full else _prefix(wait.nonce, NONCE_PREFIX)),
            ("approvals", f"{wait.approvals}/{wait.required_approvals}"),
        ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def runs_table(runs: tuple[RunSummary, ...]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("run", "doc", "mode", "state", "waiting", "stop"):
        table.add_column(name.upper(), no_wrap=name in ("run", "state"))
    for run in sorted(runs, key=lambda r: r.updated_at):
        wait = run.waiting
        waiting = (
            "-"
            if wait is None
            else f"{wait.gate.value} since {_when(wait.since)} ({_ago(wait.since)}), "
            f"{wait.approvals}/{wait.required_approvals} approvals"
        )
        table.add_row(
            run.run_id, run.doc_id, run.mode.value, run.state.value, waiting, run.stop_code or "-"
        )
    return table


def approve_hint(run: RunSummary) -> str | None:
    if run.waiting is None:
        return None
    extra = " --review-decision-id ID" if run.waiting.gate is Gate.SG_2 else ""
    return (
        f"approve with: cutter approve {run.run_id} --approver NAME --reason TEXT{extra} [--reject]"
    )


_SUBJECT_KEYS: dict[str, tuple[str, ...]] = {
    "phase_started": ("phase",),
    "phase_passed": ("phase",),
    "phase_failed": ("phase", "code", "error_id"),
    "gate_opened": ("gate", "request_digest"),
    "gate_closed": ("gate", "decision"),
    "approval_consumed": ("gate", "decision", "approver", "approval_kb_id"),
    "approval_refused": ("gate", "code", "approval_kb_id"),
    "drift_detected": ("gate", "approval_kb_id"),
}


def event_line(event: Event) -> str:
    """One transition, one line: time, run, event, what changed."""
    detail = event.detail
    if event.event == "run_state_changed":
        what = f"{detail.get('from_state')} -> {detail.get('to_state')}"
        if detail.get("stop_code"):
            what += f" ({detail['stop_code']})"
    else:
        parts = []
        for key in _SUBJECT_KEYS.get(event.event, ()):
            value = detail.get(key)
            if value is None:
                continue
            text = str(value)
            parts.append(_prefix(text, DIGEST_PREFIX) if key == "request_digest" else text)
        what = " ".join(parts)
    at = event.at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    return f"{at}  {event.run_id}  {event.event:<18} {what}".rstrip()


def show_run(target: Target, reply: RunInfo | ApprovalStored, headline: str | None = None) -> None:
    if target.as_json:
        target.frame(reply)
        return
    out = console()
    if headline:
        out.print(headline)
    out.print(run_table(reply.run))
    if hint := approve_hint(reply.run):
        out.print(hint)


# --- approving: shared with scripts/approve -------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApprovalInput:
    run_id: str
    approver: str
    reason: str
    decision: Decision = Decision.APPROVE
    review_decision_id: str | None = None
    resume: bool = True


def approval_for(run: RunSummary, given: ApprovalInput) -> SubmitApproval:
    """The approval that answers exactly the request ``run`` waits on, or why not."""
    wait = run.waiting
    if wait is None:
        raise ClientFailure(
            "E_RUN_NOT_AT_GATE",
            f"run {run.run_id} is {run.state.value} and waits at no gate: nothing to approve",
        )
    if wait.gate is Gate.SG_2 and given.review_decision_id is None:
        raise ClientFailure(
            "E_REVIEW_DECISION_REQUIRED",
            f"run {run.run_id} waits at SG_2: pass --review-decision-id ID "
            "(the review decision this approval rests on)",
        )
    return SubmitApproval(
        run_id=run.run_id,
        gate=wait.gate,
        request_digest=wait.request_digest,
        nonce=wait.nonce,
        decision=given.decision,
        approver=given.approver,
        reason=given.reason,
        review_decision_id=given.review_decision_id,
        resume=given.resume,
    )


async def approve_gate(
    client: Client, given: ApprovalInput, show: Callable[[RunSummary], None] | None = None
) -> ApprovalStored:
    """Ask which request the run waits on, ``show`` it, and answer exactly that one."""
    run = _expect(await client.request(StatusOf(run_id=given.run_id)), RunInfo).run
    command = approval_for(run, given)
    if show is not None:
        show(run)
    return _expect(await client.request(command), ApprovalStored)


def approval_options(func: F) -> F:
    """RUN_ID and what a reviewer declares: the same for cutter approve and scripts/approve."""
    for option in reversed(
        [
            click.argument("run_id"),
            click.option("--approver", required=True, help="Who decides (not the starter)."),
            click.option("--reason", required=True, help="Why, in a sentence."),
            click.option("--reject", is_flag=True, help="Reject: end the run, roll back writes."),
            click.option(
                "--review-decision-id",
                default=None,
                help="Required at SG_2: the review decision this approval rests on.",
            ),
        ]
    ):
        func = option(func)
    return func


def approval_input(
    run_id: str,
    approver: str,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
    resume: bool = True,
) -> ApprovalInput:
    return ApprovalInput(
        run_id=run_id,
        approver=approver,
        reason=reason,
        decision=Decision.REJECT if reject else Decision.APPROVE,
        review_decision_id=review_decision_id,
        resume=resume,
    )


def stored_headline(reply: ApprovalStored, given: ApprovalInput) -> str:
    after = f"run is now {reply.run.state.value}"
    if not given.resume:
        after = f"not resumed: cutter resume {reply.run.run_id} --approval {reply.approval_kb_id}"
    verb = "approved" if given.decision is Decision.APPROVE else "rejected"
    return f"{given.approver} {verb}: stored as {reply.approval_kb_id}; {after}"


@click.command("approve")
@approval_options
@daemon_options
def reviewer_main(
    socket_path: Path,
    as_json: bool,
    run_id: str,
    approver: str,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
) -> None:
    """Show the request RUN_ID waits on at its gate, then send your decision on it."""
    target = Target(socket_path, as_json)
    given = approval_input(run_id, approver, reason, reject, review_decision_id)

    def show(run: RunSummary) -> None:
        if as_json:
            return
        out = console()
        out.print(f"You are answering this request ({given.decision.value}):")
        out.print(run_table(run, full=True))
        out.print(f"decision: {given.decision.value} by {approver}: {reason}")

    reply = target.call(lambda client: approve_gate(client, given, show))
    show_run(target, reply, stored_headline(reply, given))


# --- the subcommands ----------------------------------------------------------------------
@click.command()
@daemon_options
def ping(socket_path: Path, as_json: bool) -> None:
    """Check that a daemon answers, and which protocol it speaks."""
    target = Target(socket_path, as_json)
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
    target = Target(socket_path, as_json)
    command = Start(
        doc_id=doc_id, started_by=by, mode=Mode.LIVE if live else Mode.DRY_RUN, wait=not no_wait
    )
    if no_wait:
        accepted = target.request(command, Accepted)
        if as_json:
            target.frame(accepted)
        else:
            click.echo(f"{accepted.run_id} started; follow it with: cutter watch {accepted.run_id}")
        return
    show_run(target, target.request(command, RunInfo))


@click.command()
@daemon_options
@click.argument("run_id")
def status(socket_path: Path, as_json: bool, run_id: str) -> None:
    """One run: its state, its stop, and what its gate waits for."""
    target = Target(socket_path, as_json)
    show_run(target, target.request(StatusOf(run_id=run_id), RunInfo))


@click.command()
@daemon_options
@click.option(
    "--state",
    type=click.Choice([s.value for s in RunState], case_sensitive=False),
    default=None,
    help="Only runs in this state.",
)
def runs(socket_path: Path, as_json: bool, state: str | None) -> None:
    """Every run the daemon knows: state, waiting gate and since when, stop code."""
    target = Target(socket_path, as_json)
    chosen = None if state is None else RunState(state.upper())
    reply = target.request(ListRuns(state=chosen), RunList)
    if as_json:
        target.frame(reply)
    elif not reply.runs:
        click.echo("no runs" if chosen is None else f"no runs in state {chosen.value}")
    else:
        console().print(runs_table(reply.runs))


@click.command()
@approval_options
@click.option("--no-resume", is_flag=True, help="Only store the approval; resume later.")
@daemon_options
def approve(
    socket_path: Path,
    as_json: bool,
    run_id: str,
    approver: str,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
    no_resume: bool,
) -> None:
    """Approve (or --reject) exactly the request RUN_ID waits on at its gate."""
    target = Target(socket_path, as_json)
    given = approval_input(run_id, approver, reason, reject, review_decision_id, not no_resume)
    reply = target.call(lambda client: approve_gate(client, given))
    show_run(target, reply, stored_headline(reply, given))


@click.command()
@daemon_options
@click.argument("run_id")
@click.option("--approval", "approval_kb_id", default=None, help="The approval's KB id.")
@click.option("--no-wait", is_flag=True, help="Answer at once; follow with status or watch.")
def resume(
    socket_path: Path, as_json: bool, run_id: str, approval_kb_id: str | None, no_wait: bool
) -> None:
    """Continue a paused or halted run (at a gate: with a stored approval)."""
    target = Target(socket_path, as_json)
    command = Resume(run_id=run_id, approval_kb_id=approval_kb_id, wait=not no_wait)
    if no_wait:
        accepted = target.request(command, Accepted)
        if as_json:
            target.frame(accepted)
        else:
            click.echo(f"{accepted.run_id} resuming; follow it with: cutter watch {run_id}")
        return
    show_run(target, target.request(command, RunInfo))


@click.command()
@daemon_options
@click.argument("run_id")
@click.option("--reason", required=True, help="Why the run is ended.")
@click.option("--by", default=login_name, show_default="login name", help="Who ends it.")
def abort(socket_path: Path, as_json: bool, run_id: str, reason: str, by: str) -> None:
    """End a run (a live run's writes are rolled back)."""
    target = Target(socket_path, as_json)
    show_run(target, target.request(AbortRun(run_id=run_id, reason=reason, by=by), RunInfo))


class _Watcher(Client):
    """A client whose watch is subscribed before the first event is awaited."""

    async def subscribe(self, command: Watch) -> None:
        await self._send(command)

    async def next_event(self) -> Event:
        return _expect(await self._receive(), Event)


@click.command()
@daemon_options
@click.argument("run_id", required=False)
def watch(socket_path: Path, as_json: bool, run_id: str | None) -> None:
    """Print each run transition as it happens (one run, or every run) until Ctrl-C.

    Given RUN_ID, stop when that run reaches a final state (or is in one already).
    """
    target = Target(socket_path, as_json)

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
                run = _expect(await status_client.request(StatusOf(run_id=run_id)), RunInfo).run
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


def _show_switch(target: Target, reply: KillSwitchState) -> None:
    if target.as_json:
        target.frame(reply)
    else:
        click.echo(f"kill switch {'ENGAGED' if reply.engaged else 'released'}")


@kill_switch.command("engage")
@daemon_options
@click.option("--reason", required=True, help="Why; recorded with the switch.")
def kill_switch_engage(socket_path: Path, as_json: bool, reason: str) -> None:
    """Halt live runs at their next phase boundary (dry runs go on)."""
    target = Target(socket_path, as_json)
    _show_switch(target, target.request(SetKillSwitch(engage=True, reason=reason), KillSwitchState))


@kill_switch.command("release")
@daemon_options
def kill_switch_release(socket_path: Path, as_json: bool) -> None:
    """Release the kill switch; halted runs stay halted until resumed."""
    target = Target(socket_path, as_json)
    _show_switch(target, target.request(SetKillSwitch(engage=False), KillSwitchState))


@click.command()
@daemon_options
def shutdown(socket_path: Path, as_json: bool) -> None:
    """Ask the daemon to drain (walks pause at their next phase) and exit."""
    target = Target(socket_path, as_json)
    reply = target.request(Shutdown(), ShuttingDown)
    if as_json:
        target.frame(reply)
    else:
        click.echo(f"daemon on {socket_path} is shutting down")


COMMANDS: tuple[click.Command, ...] = (
    ping,
    start,
    status,
    runs,
    approve,
    resume,
    abort,
    watch,
    kill_switch,
    shutdown,
)


def register(group: click.Group) -> None:
    """Attach the client subcommands to the ``cutter`` group."""
    for command in COMMANDS:
        group.add_command(command)
