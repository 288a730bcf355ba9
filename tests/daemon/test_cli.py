"""The operator's client: ``cutter`` subcommands and ``scripts/approve`` against the real
daemon (a subprocess on the embedded file stores), driven only through the command line.

Every step goes through ``click.testing.CliRunner`` invoking ``cutter.cli.main.main`` with
``--socket``; the watcher and the reviewer's script run as subprocesses, synchronised on
the lines they print, never on a timer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result

from cutter.cli.main import main
from cutter.cli.remote import login_name
from cutter.core.protocol import (
    PROTOCOL_VERSION,
    Accepted,
    AnyReply,
    ApprovalStored,
    Error,
    Event,
    KillSwitchState,
    Pong,
    Reply,
    RunInfo,
    RunList,
    RunSummary,
    ShuttingDownReply,
    decode_reply,
    encode,
)
from cutter.core.route import Gate
from cutter.core.states import RunState
from tests.daemon.conftest import ROOT, DaemonProcess, start_daemon

DOC_ID = "doc-1"
SAMPLE = ROOT / "cutter" / "samples" / "garden-charter.md"
STARTER = "ann"
REVIEWER = "bob"
APPROVE_SCRIPT = ROOT / "scripts" / "approve"
SG1 = ("--gate", "SG_1")
SG2 = ("--gate", "SG_2")
TIMEOUT = 60


# --- helpers -------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    """Subprocesses import this checkout, and ``python3`` is the interpreter running us."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PYTHONPATH": str(ROOT), "PATH": path}


def cli(socket: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--socket", str(socket)], catch_exceptions=False)


def ok(socket: Path, *args: str) -> Result:
    result = cli(socket, *args)
    assert result.exit_code == 0, result.output
    return result


def frame(result: Result) -> AnyReply:
    """The one reply frame ``--json`` printed, checked to be exactly the protocol's bytes."""
    reply = decode_reply(result.stdout.encode())
    assert encode(reply).decode() == result.stdout
    return reply


R = TypeVar("R", bound=Reply)


def expect(reply: AnyReply, kind: type[R]) -> R:
    assert isinstance(reply, kind), reply
    return reply


def start(socket: Path, *args: str) -> RunSummary:
    result = ok(socket, "start", DOC_ID, "--by", STARTER, "--json", *args)
    return expect(frame(result), RunInfo).run


def run_status(socket: Path, run_id: str) -> RunSummary:
    return expect(frame(ok(socket, "status", run_id, "--json")), RunInfo).run


def refused(result: Result, code: str) -> str:
    """Exit 1, ``CODE: message`` on stderr, and no traceback anywhere."""
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"{code}: "), result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def row_of(table: str, run_id: str) -> str:
    [row] = [line for line in table.splitlines() if run_id in line]
    return row


def start_with_sample(tmp_path: Path, daemons: list[DaemonProcess]) -> DaemonProcess:
    """A daemon on its own state directory, holding the sample as DOC_ID."""
    state = tmp_path / "state"
    add = ["add-document", "--state-dir", str(state), DOC_ID, str(SAMPLE)]
    added = subprocess.run(
        [sys.executable, "-m", "cutter", *add],
        capture_output=True,
        env=_env(),
        cwd=ROOT,
        timeout=TIMEOUT,
        check=False,
    )
    assert added.returncode == 0, added.stderr.decode(errors="replace")
    process = start_daemon(state)
    daemons.append(process)
    return process


@pytest.fixture
def daemon(tmp_path: Path, daemons: list[DaemonProcess]) -> Iterator[DaemonProcess]:
    process = start_with_sample(tmp_path, daemons)
    yield process
    assert process.stop() == 0


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_env(),
        cwd=ROOT,
        text=True,
    )


def watcher(socket: Path, *args: str) -> subprocess.Popen[str]:
    """``cutter watch`` in a subprocess, returned once it says it is watching."""
    process = spawn(sys.executable, "-m", "cutter", "watch", "--socket", str(socket), *args)
    assert process.stderr is not None
    header = process.stderr.readline()
    assert header.startswith("watching "), header + process.stderr.read()
    return process


# --- the walk --------------------------------------------------------------------------------
@pytest.mark.subprocess
def test_both_gates_from_the_command_line(daemon: DaemonProcess) -> None:
    socket = daemon.socket
    started = ok(socket, "start", DOC_ID, "--by", STARTER)
    assert "AWAITING_CUT_AUTHORIZATION" in started.stdout
    [run_id] = [r.run_id for r in expect(frame(ok(socket, "runs", "--json")), RunList).runs]

    row = row_of(ok(socket, "runs").stdout, run_id)
    assert "AWAITING_CUT_AUTHORIZATION" in row
    assert "SG_1 since" in row
    assert "0/1 approvals" in row
    assert "STOP_APPROVAL_REQUIRED" in row
    at_sg1 = ok(socket, "runs", "--state", "awaiting_cut_authorization").stdout
    assert run_id in at_sg1
    assert (
        "no runs in state CLOSEOUT_REPORTED"
        in ok(socket, "runs", "--state", "CLOSEOUT_REPORTED").stdout
    )

    first = ok(socket, "approve", run_id, *SG1, "--approver", REVIEWER, "--reason", "plan checked")
    assert f"{REVIEWER} approved: stored as approvals/{run_id}/SG_1-" in first.stdout
    assert "AWAITING_LIFECYCLE_AUTHORIZATION" in first.stdout

    shown = ok(socket, "status", run_id).stdout
    waiting = run_status(socket, run_id).waiting
    assert waiting is not None
    assert waiting.gate is Gate.SG_2
    assert "SG_2 since" in shown
    assert waiting.request_digest[:16] in shown
    assert waiting.request_digest not in shown  # a prefix: the full digest is for reviewers
    assert waiting.nonce[:8] in shown
    assert "0/1" in shown
    assert "--review-decision-id ID" in shown

    # SG_2 needs the review decision the approval rests on; the client says so, sends nothing.
    missing = cli(socket, "approve", run_id, *SG2, "--approver", REVIEWER, "--reason", "verified")
    assert "--review-decision-id" in refused(missing, "E_REVIEW_DECISION_REQUIRED")
    assert run_status(socket, run_id).waiting == waiting

    done = ok(
        socket,
        "approve",
        run_id,
        *SG2,
        "--approver",
        REVIEWER,
        "--reason",
        "verified",
        "--review-decision-id",
        f"review-{run_id}",
        "--json",
    )
    stored = expect(frame(done), ApprovalStored)
    assert stored.approval_kb_id.startswith(f"approvals/{run_id}/SG_2-")
    assert stored.run.state is RunState.CLOSEOUT_REPORTED
    final = run_status(socket, run_id)
    assert final.state is RunState.CLOSEOUT_REPORTED
    assert final.waiting is None
    assert "CLOSEOUT_REPORTED" in ok(socket, "status", run_id).stdout

    again = cli(socket, "approve", run_id, *SG2, "--approver", REVIEWER, "--reason", "once more")
    assert "waits at no gate" in refused(again, "E_RUN_NOT_AT_GATE")


@pytest.mark.subprocess
def test_json_replies_are_protocol_frames(daemon: DaemonProcess) -> None:
    socket = daemon.socket
    assert expect(frame(ok(socket, "ping", "--json")), Pong).protocol == PROTOCOL_VERSION
    assert f"daemon on {socket} answers (protocol {PROTOCOL_VERSION})" in ok(socket, "ping").stdout
    assert expect(frame(ok(socket, "runs", "--json")), RunList).runs == ()
    assert ok(socket, "runs").stdout.strip() == "no runs"

    # --no-wait answers before the run exists on disk: follow every run to see it arrive.
    everything = watcher(socket, "--json")
    accepted = expect(frame(ok(socket, "start", DOC_ID, "--no-wait", "--json")), Accepted)
    assert everything.stdout is not None
    for line in everything.stdout:
        event = expect(decode_reply(line.encode()), Event)
        assert event.run_id == accepted.run_id
        if event.detail.get("to_state") == RunState.AWAITING_CUT_AUTHORIZATION.value:
            break
    everything.send_signal(signal.SIGINT)
    everything.communicate(timeout=TIMEOUT)
    assert everything.returncode == 130

    run = run_status(socket, accepted.run_id)
    assert run.started_by == login_name()
    follow = watcher(socket, accepted.run_id)  # ends itself at a final state
    abort = ("abort", accepted.run_id, "--reason", "wrong document", "--by", "carol", "--json")
    assert expect(frame(ok(socket, *abort)), RunInfo).run.state is RunState.ABORTED
    out, err = follow.communicate(timeout=TIMEOUT)
    assert follow.returncode == 0, err
    assert out.splitlines()[-1].endswith(
        "AWAITING_CUT_AUTHORIZATION -> ABORTED (STOP_OPERATOR_ABORT)"
    )
    ended = ok(socket, "watch", accepted.run_id)  # already final: says so and returns
    assert f"{accepted.run_id} is ABORTED" in ended.stderr

    refusal = cli(socket, "resume", accepted.run_id, "--json")
    refused(refusal, "E_RUN_NOT_RESUMABLE")
    assert expect(frame(refusal), Error).code == "E_RUN_NOT_RESUMABLE"


@pytest.mark.subprocess
def test_the_approver_is_the_caller_unless_declared(daemon: DaemonProcess) -> None:
    """Without --approver the decision is the caller's own: the login name of its uid,
    which is the principal the daemon authenticates; the hint asks for no name."""
    socket = daemon.socket
    run = start(socket)
    shown = ok(socket, "status", run.run_id).stdout
    assert "--approver" not in shown
    assert f"approve with: cutter approve {run.run_id} --gate SG_1" in shown
    result = ok(socket, "approve", run.run_id, *SG1, "--reason", "plan checked", "--no-resume")
    assert result.stdout.startswith(f"{login_name()} approved: stored as approvals/"), result.stdout


# --- refusals ---------------------------------------------------------------------------------
@pytest.mark.subprocess
def test_self_approval_is_refused_and_changes_nothing(daemon: DaemonProcess) -> None:
    socket = daemon.socket
    run = start(socket)
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    result = cli(socket, "approve", run.run_id, *SG1, "--approver", STARTER, "--reason", "mine")
    assert "may not approve" in refused(result, "APPROVAL_SELF")
    as_json = cli(
        socket, "approve", run.run_id, *SG1, "--approver", STARTER, "--reason", "x", "--json"
    )
    refused(as_json, "APPROVAL_SELF")
    assert expect(frame(as_json), Error).code == "APPROVAL_SELF"

    after = run_status(socket, run.run_id)
    assert after.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert after.waiting == run.waiting  # same request, same nonce, no approval counted
    assert after.waiting is not None
    assert after.waiting.approvals == 0


@pytest.mark.subprocess
def test_unknown_and_malformed_runs(daemon: DaemonProcess) -> None:
    socket = daemon.socket
    refused(cli(socket, "status", "run-0000000000000000"), "E_UNKNOWN_RUN")
    refused(
        cli(
            socket, "approve", "run-0000000000000000", *SG1, "--approver", REVIEWER, "--reason", "x"
        ),
        "E_UNKNOWN_RUN",
    )
    refused(cli(socket, "watch", "run-0000000000000000"), "E_UNKNOWN_RUN")
    refused(cli(socket, "status", "../etc"), "E_INVALID_ID")


def test_no_daemon_exits_2(tmp_path: Path) -> None:
    socket = tmp_path / "nobody.sock"
    for args in (("ping",), ("status", "run-1"), ("runs", "--json")):
        result = cli(socket, *args)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("E_DAEMON_UNAVAILABLE: ")
        assert str(socket) in result.stderr
        assert "Traceback" not in result.output
    assert expect(frame(cli(socket, "runs", "--json")), Error).code == "E_DAEMON_UNAVAILABLE"


@pytest.mark.subprocess
def test_kill_switch_round_trip(daemon: DaemonProcess) -> None:
    socket = daemon.socket
    assert (
        "kill switch ENGAGED" in ok(socket, "kill-switch", "engage", "--reason", "db work").stdout
    )
    engaged = ok(socket, "kill-switch", "engage", "--reason", "db work", "--json")
    assert expect(frame(engaged), KillSwitchState).engaged
    released = ok(socket, "kill-switch", "release", "--json")
    assert not expect(frame(released), KillSwitchState).engaged
    assert "kill switch released" in ok(socket, "kill-switch", "release").stdout
    missing_reason = cli(socket, "kill-switch", "engage")
    assert missing_reason.exit_code == 2  # click's usage error: --reason is required
    assert "--reason" in missing_reason.output


# --- the reviewer's script, watching, shutting down ---------------------------------------------
@pytest.mark.subprocess
def test_approve_script_releases_sg1(daemon: DaemonProcess) -> None:
    socket = daemon.socket
    run = start(socket)
    assert run.waiting is not None
    command = [str(APPROVE_SCRIPT), "--socket", str(socket), run.run_id, *SG1]
    command += ["--approver", REVIEWER, "--reason", "plan matches the charter"]
    command += ["--request-digest", run.waiting.request_digest[:12]]
    done = subprocess.run(
        command, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    shown, _, result = done.stdout.partition(f"{REVIEWER} approved: stored as ")
    assert run.waiting.request_digest in shown  # the reviewer sees the whole digest
    assert run.waiting.nonce in shown
    assert DOC_ID in shown
    assert result.startswith(f"approvals/{run.run_id}/SG_1-")
    after = run_status(socket, run.run_id)
    assert after.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    assert after.waiting is not None
    assert after.waiting.gate is Gate.SG_2

    # The same SG_1 decision again is not re-aimed at the SG_2 request the run waits on now.
    again = subprocess.run(
        command, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=TIMEOUT, check=False
    )
    assert again.returncode == 1
    assert again.stderr.startswith("APPROVAL_WRONG_GATE: run ")
    assert "waits at SG_2, not SG_1" in again.stderr
    assert run_status(socket, run.run_id).waiting == after.waiting

    # At SG_2 the script, like cutter approve, wants the review decision id.
    sg2 = [str(APPROVE_SCRIPT), "--socket", str(socket), run.run_id, *SG2]
    sg2 += ["--approver", REVIEWER, "--reason", "verified"]
    missing = subprocess.run(
        sg2, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=TIMEOUT, check=False
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("E_REVIEW_DECISION_REQUIRED: ")


@pytest.mark.subprocess
def test_watch_prints_transitions_until_the_run_ends(daemon: DaemonProcess) -> None:
    socket = daemon.socket
    run = start(socket)
    lines = watcher(socket, run.run_id)
    frames = watcher(socket, run.run_id, "--json")
    ok(socket, "approve", run.run_id, *SG1, "--approver", REVIEWER, "--reason", "plan checked")
    review = ("--review-decision-id", f"review-{run.run_id}")
    ok(socket, "approve", run.run_id, *SG2, "--approver", REVIEWER, "--reason", "verified", *review)
    events = []
    for process in (lines, frames):
        out, err = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, err
        events.append(out.splitlines())
    text, json_lines = events
    decoded = [expect(decode_reply(line.encode()), Event) for line in json_lines]
    assert len(text) == len(decoded)
    assert all(e.run_id == run.run_id for e in decoded)
    assert decoded[-1].event == "run_state_changed"
    assert decoded[-1].detail["to_state"] == "CLOSEOUT_REPORTED"
    assert text[-1].endswith("run_state_changed  RUNNING -> CLOSEOUT_REPORTED")
    assert any("gate_opened        SG_2" in line for line in text)
    assert any(f"approval_consumed  SG_1 approve {REVIEWER}" in line for line in text)


@pytest.mark.subprocess
def test_watch_stops_quietly_on_ctrl_c(daemon: DaemonProcess) -> None:
    process = watcher(daemon.socket)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130
    assert "Traceback" not in out + err


@pytest.mark.subprocess
def test_shutdown_stops_the_daemon(daemon: DaemonProcess) -> None:
    result = cli(daemon.socket, "shutdown")
    assert daemon.process.wait(timeout=TIMEOUT) == 0
    assert "Traceback" not in result.output
    gone = cli(daemon.socket, "ping")
    assert gone.exit_code == 2
    assert gone.stderr.startswith("E_DAEMON_UNAVAILABLE: ")


@pytest.mark.subprocess
def test_shutdown_is_answered(daemon: DaemonProcess) -> None:
    result = cli(daemon.socket, "shutdown", "--json")
    assert daemon.process.wait(timeout=TIMEOUT) == 0
    assert result.exit_code == 0, result.output
    expect(frame(result), ShuttingDownReply)
    gone = cli(daemon.socket, "shutdown")  # the daemon has exited: nobody answers
    assert gone.exit_code == 2
