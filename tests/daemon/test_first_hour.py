"""The first hour with the daemon (issue 12, §7): exit statuses that say what happened to
the run, a kill switch that wants a reason, every frame in the log, short lines on a
terminal, and the approval time-to-live on the command line.

The daemon is a real subprocess on the embedded stores; the client goes through
``CliRunner`` and ``scripts/approve`` as a subprocess. Synchronised on replies and on
the daemon's exit, never on a timer.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutter.cli.render import DIGEST_PREFIX
from cutter.core.protocol import Error, PolicyInfo, RunInfo, decode_reply
from cutter.core.states import RunState
from tests.daemon._db import read
from tests.daemon.conftest import ROOT, START_TIMEOUT, DaemonProcess, start_daemon
from tests.daemon.test_cli import (
    APPROVE_SCRIPT,
    DOC_ID,
    REVIEWER,
    SAMPLE,
    SG1,
    STARTER,
    TIMEOUT,
    _env,
    cli,
    expect,
    frame,
    ok,
    start,
    start_with_sample,
)

pytestmark = pytest.mark.subprocess

EXIT_STOPPED = 4  # the documented status of a run that stopped (docs/protocol.md)


@pytest.fixture
def daemon(tmp_path: Path, daemons: list[DaemonProcess]) -> Iterator[DaemonProcess]:
    process = start_with_sample(tmp_path, daemons)
    yield process
    process.stop()


def raw_exchange(sock_path: Path, line: bytes) -> bytes:
    """Send one raw line on a connection of its own; the one reply line."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock_path))
        conn.sendall(line)
        with conn.makefile("rb") as reader:
            return reader.readline()


# --- exit statuses ----------------------------------------------------------------------------
def test_start_of_an_unknown_document_exits_stopped(daemon: DaemonProcess) -> None:
    result = cli(daemon.socket, "start", "no-such-doc", "--by", STARTER, "--json")
    assert result.exit_code == EXIT_STOPPED, result.output
    run = expect(frame(result), RunInfo).run
    assert run.state is RunState.FAILED
    assert run.stop_code == "STOP_DOCUMENT_UNKNOWN"
    human = cli(daemon.socket, "start", "no-such-doc", "--by", STARTER)
    assert human.exit_code == EXIT_STOPPED
    assert "stopped FAILED (STOP_DOCUMENT_UNKNOWN" in human.stderr
    assert "Traceback" not in human.output
    # A run that reaches its gate is where start sends it: 0.
    assert start(daemon.socket).state is RunState.AWAITING_CUT_AUTHORIZATION


def test_approve_script_exits_stopped_when_the_run_fails(daemon: DaemonProcess) -> None:
    socket_path = daemon.socket
    run = start(socket_path)
    assert run.waiting is not None
    # A new version of the document while the run waits: the gate stops it (STOP_DRIFT).
    changed = daemon.state_dir.parent / "changed.md"
    changed.write_bytes(SAMPLE.read_bytes() + b"\nA new closing line.\n")
    add = ["add-document", "--state-dir", str(daemon.state_dir), DOC_ID, str(changed)]
    subprocess.run(
        [sys.executable, "-m", "cutter", *add], env=_env(), cwd=ROOT, timeout=TIMEOUT, check=True
    )
    command = [str(APPROVE_SCRIPT), "--socket", str(socket_path), run.run_id, *SG1]
    command += ["--approver", REVIEWER, "--reason", "plan checked"]
    command += ["--request-digest", run.waiting.request_digest[:DIGEST_PREFIX]]
    done = subprocess.run(
        command, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=TIMEOUT, check=False
    )
    assert done.returncode == EXIT_STOPPED, done.stdout + done.stderr
    assert f"{run.run_id} stopped FAILED (STOP_DRIFT" in done.stderr
    after = expect(frame(ok(socket_path, "status", run.run_id, "--json")), RunInfo).run
    assert after.state is RunState.FAILED  # `status` reports it, and exits 0


def test_abort_and_reject_end_the_run_as_asked(daemon: DaemonProcess) -> None:
    socket_path = daemon.socket
    first = start(socket_path)
    aborted = ok(socket_path, "abort", first.run_id, "--reason", "wrong document", "--json")
    assert expect(frame(aborted), RunInfo).run.state is RunState.ABORTED
    second = start(socket_path)
    rejected = ok(
        socket_path, "approve", second.run_id, *SG1, "--approver", REVIEWER, "--reason", "no",
        "--reject", "--json",
    )  # fmt: skip
    assert "REJECTED" in rejected.stdout
    # Resuming a run that ended is refused: 1, not the stopped status.
    again = cli(socket_path, "resume", second.run_id)
    assert again.exit_code == 1
    assert again.stderr.startswith("E_RUN_NOT_RESUMABLE: ")


# --- the kill switch wants a reason -----------------------------------------------------------
@pytest.mark.parametrize("reason", ["", "   ", "\t\n"])
def test_kill_switch_without_a_reason_is_refused(daemon: DaemonProcess, reason: str) -> None:
    result = cli(daemon.socket, "kill-switch", "engage", "--reason", reason)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("E_INVALID_ID: invalid reason: ")
    # The daemon refuses it too, whoever sends it.
    line = json.dumps({"cmd": "kill_switch", "id": "k", "engage": True, "reason": reason})
    reply = decode_reply(raw_exchange(daemon.socket, line.encode() + b"\n"))
    assert isinstance(reply, Error)
    assert reply.code == "E_INVALID_ID"
    assert read(daemon.state_dir, lambda c: c.kill_switch.engaged()) is False


def test_abort_and_approval_without_a_reason_are_refused(daemon: DaemonProcess) -> None:
    """Ending someone's run or deciding a gate is recorded with why; a blank reason is
    refused by the daemon whoever sends it, and the run stays as it was."""
    run = start(daemon.socket)
    assert run.waiting is not None
    abort = {"cmd": "abort", "id": "a", "run_id": run.run_id, "reason": "  ", "by": STARTER}
    approve = {
        "cmd": "approve", "id": "b", "run_id": run.run_id, "gate": "SG_1",
        "request_digest": run.waiting.request_digest, "nonce": run.waiting.nonce,
        "decision": "approve", "approver": REVIEWER, "reason": "",
    }  # fmt: skip
    for command in (abort, approve):
        reply = decode_reply(raw_exchange(daemon.socket, json.dumps(command).encode() + b"\n"))
        assert isinstance(reply, Error), reply
        assert reply.code == "E_INVALID_ID"
    after = expect(frame(ok(daemon.socket, "status", run.run_id, "--json")), RunInfo).run
    assert after.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert after.waiting == run.waiting


# --- every frame leaves a log line ----------------------------------------------------------------
def test_watch_and_undecodable_frames_are_logged(daemon: DaemonProcess) -> None:
    reply = decode_reply(raw_exchange(daemon.socket, b"not json\n"))
    assert isinstance(reply, Error)
    assert reply.code == "E_BAD_FRAME"
    with socket.socket(socket.AF_UNIX) as watch:
        watch.connect(str(daemon.socket))
        watch.sendall(b'{"cmd":"watch","id":"w1"}\n')
        start(daemon.socket)
        with watch.makefile("rb") as events:
            assert b'"reply":"event"' in events.readline()  # the watch was being served
    assert daemon.stop() == 0  # the reader has every line once the daemon exited
    refused = daemon.named("frame_refused")
    assert [e["code"] for e in refused] == ["E_BAD_FRAME"]
    assert all(str(e["peer"]).startswith("uid=") for e in refused)
    watches = [e for e in daemon.named("command_received") if e["cmd"] == "Watch"]
    assert [e["id"] for e in watches] == ["w1"]


# --- a person at a terminal reads short lines; JSON goes to the file ------------------------
class TerminalReader:
    """Everything written to the terminal, read by a thread (so the daemon never blocks
    on a full terminal); ``wait_for`` blocks until a text appears or the writers close."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.text = ""
        self.changed = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: every writer of the terminal has closed it
                chunk = b""
            with self.changed:
                if not chunk:
                    self.closed = True
                else:
                    self.text += chunk.decode(errors="replace")
                self.changed.notify_all()
            if not chunk:
                return

    def wait_for(self, needle: str) -> bool:
        with self.changed:
            return (
                self.changed.wait_for(
                    lambda: needle in self.text or self.closed, timeout=START_TIMEOUT
                )
                and needle in self.text
            )

    def finish(self) -> str:
        self.thread.join(timeout=TIMEOUT)
        return self.text


@pytest.mark.parametrize("log_file", [False, True])
def test_the_daemon_on_a_terminal_writes_short_lines(
    tmp_path: Path, daemons: list[DaemonProcess], log_file: bool
) -> None:
    seeded = start_with_sample(tmp_path, daemons)  # adds the document; stopped again below
    assert seeded.stop() == 0
    log = tmp_path / "daemon.log"
    master, terminal = pty.openpty()
    args = ["--state-dir", str(seeded.state_dir)] + (["--log", str(log)] if log_file else [])
    process = subprocess.Popen(
        [sys.executable, "-m", "cutter", "daemon", *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=_env(),
        cwd=ROOT,
    )
    os.close(terminal)
    reader = TerminalReader(master)
    try:
        assert reader.wait_for("daemon_started"), reader.text
        run = start(seeded.socket)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
        text = reader.finish()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)
        reader.finish()
        os.close(master)
    lines = text.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], text
    ours = [line for line in lines if run.run_id in line]
    assert all(len(line) <= 120 for line in ours), text
    assert not [line for line in ours if "phase_started" in line]  # passed says it
    assert any("phase_passed" in line and "source_pin" in line for line in ours), text
    assert any("-> AWAITING_CUT_AUTHORIZATION" in line for line in ours), text
    assert not [line for line in lines if "command_received" in line]  # the JSON log's
    assert "daemon_stopped" in lines[-1]
    if log_file:
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert "command_received" in events
        assert "phase_passed" in events
    else:
        assert not log.exists()


# --- the approval time-to-live on the command line -------------------------------------------
def test_approval_ttl_sets_the_default_policy(tmp_path: Path, daemons: list[DaemonProcess]) -> None:
    state = tmp_path / "state"
    process = start_daemon(state, "--approval-ttl", "600")
    daemons.append(process)
    info = expect(frame(ok(process.socket, "policy", "show", "--json")), PolicyInfo)
    assert info.version == 0  # the default policy, built from the options
    assert info.policy.sg_1.ttl_seconds == 600
    assert info.policy.sg_2.ttl_seconds == 600
    assert process.stop() == 0
    command = [sys.executable, "-m", "cutter", "daemon", "--state-dir", str(state)]
    too_short = subprocess.run(
        [*command, "--approval-ttl", "5"],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert too_short.returncode == 2  # click's usage error
    assert "--approval-ttl" in too_short.stderr
