"""One owner per state directory, whatever the transport: real ``cutter`` processes.

Two daemons on one state directory would walk the same runs at once (each resumes
every unfinished run it finds; a run's walk is serialised only within a process),
so the second is refused: ``E_STATE_DIR_BUSY``
on one stderr line naming the owner's pid, exit code 3, nothing changed. Every
order of socket and ``--stdio`` is tried, and a socket file deleted under a live
daemon. The first daemon still answers afterwards, and once it is killed with
SIGKILL a new one starts: the kernel dropped its lock, and the pid it left in
``owner.pid`` blocks nobody. Readiness is the daemon's ``daemon_started`` log line
and its answer to a ping; a refused process is waited for to exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from cutter.core.mode import Mode
from cutter.core.protocol import Ping, Pong, decode_reply, encode
from cutter.core.states import RunState
from cutter.runtime.failpoints import ENV as FAILPOINT_ENV
from tests.daemon._db import consumed_approvals, query
from tests.daemon._drive import (
    DOC_ID,
    SAMPLE,
    StdioDaemon,
    WatchedDaemon,
    add_document,
    approve,
    launch,
    start_run,
)
from tests.daemon.conftest import ROOT, START_TIMEOUT

pytestmark = pytest.mark.subprocess

SOCKET, STDIO = "socket", "stdio"
EXIT_STATE_DIR_BUSY = 3  # documented in docs/operations.md
EXIT_ERROR = 1


def _env() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
    return {**environment, "PYTHONPATH": str(ROOT)}


def cutter(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cutter ARGS`` with stdin closed, waited for to exit."""
    return subprocess.run(
        [sys.executable, "-m", "cutter", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=START_TIMEOUT,
        check=False,
    )


def daemon_args(state: Path, transport: str) -> list[str]:
    args = ["daemon", "--state-dir", str(state)]
    if transport == STDIO:
        args += ["--stdio", "--log", str(state.parent / "refused-daemon.log")]
    return args


def ping_socket(connection: socket.socket) -> None:
    """One ping on an open connection to a socket daemon, answered with its pong."""
    connection.sendall(encode(Ping(id="are-you-there")))
    with connection.makefile("rb") as replies:
        reply = decode_reply(replies.readline())
    assert isinstance(reply, Pong), reply
    assert reply.id == "are-you-there"


def connect(path: Path) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(START_TIMEOUT)
    connection.connect(str(path))
    return connection


@dataclass
class Running:
    """A daemon that logged ``daemon_started`` and answered a ping, on either transport."""

    transport: str
    process: WatchedDaemon | StdioDaemon
    state: Path

    @property
    def pid(self) -> int:
        return self.process.process.pid

    @property
    def holder(self) -> str:
        if self.transport == STDIO:
            return "cutter daemon --stdio"
        return f"cutter daemon on {self.state / 'daemon.sock'}"

    def ping(self) -> None:
        if isinstance(self.process, StdioDaemon):
            reply = self.process.request(Ping(id="are-you-there"))
            assert isinstance(reply, Pong), reply
            return
        with connect(self.state / "daemon.sock") as connection:
            ping_socket(connection)

    def kill_9(self) -> None:
        self.process.process.kill()
        assert self.process.process.wait(timeout=60) == -9

    def stop(self) -> int:
        if isinstance(self.process, StdioDaemon):
            return self.process.close()
        return self.process.stop()


@contextlib.contextmanager
def running(state: Path, transport: str) -> Iterator[Running]:
    if transport == STDIO:
        stdio = StdioDaemon(state)
        try:
            stdio.wait_named("daemon_started")
            daemon = Running(STDIO, stdio, state)
            daemon.ping()
            yield daemon
        finally:
            stdio.close()
        return
    watched = launch(state)
    try:
        daemon = Running(SOCKET, watched, state)
        daemon.ping()
        yield daemon
    finally:
        watched.kill()


def snapshot(state: Path) -> dict[str, bytes | None]:
    """Every path under the state directory and what each regular file holds."""
    return {
        str(path.relative_to(state)): path.read_bytes() if path.is_file() else None
        for path in sorted(state.rglob("*"))
    }


def assert_refused(state: Path, transport: str, owner: Running) -> None:
    """A second daemon on ``transport`` is refused with one line naming the owner, and
    changes nothing in the state directory."""
    before = snapshot(state)
    done = cutter(*daemon_args(state, transport))
    assert done.returncode == EXIT_STATE_DIR_BUSY, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: E_STATE_DIR_BUSY: state directory {state} is owned by pid {owner.pid} "
        f"({owner.holder}), which holds {state / 'owner.pid'}"
    ]
    assert done.stdout == ""
    assert snapshot(state) == before
    assert not (state.parent / "refused-daemon.log").exists()


@pytest.mark.parametrize("second", [SOCKET, STDIO])
@pytest.mark.parametrize("first", [SOCKET, STDIO])
def test_a_second_daemon_is_refused_and_the_first_one_serves_on(
    tmp_path: Path, first: str, second: str
) -> None:
    state = tmp_path / "state"
    with running(state, first) as owner:
        assert_refused(state, second, owner)
        owner.ping()
        if first == SOCKET:
            assert (state / "daemon.sock").is_socket()
        owner.kill_9()
        # The owner died holding the lock, its pid still in owner.pid: a new one starts.
        assert (state / "owner.pid").read_text().split("\n")[0] == str(owner.pid)
        with running(state, second) as successor:
            assert (state / "owner.pid").read_text().split("\n")[0] == str(successor.pid)
            assert successor.stop() == 0
    assert (state / "owner.pid").read_bytes() == b""  # a clean stop names no owner


@pytest.mark.parametrize("second", [SOCKET, STDIO])
def test_deleting_the_socket_file_does_not_let_a_second_daemon_in(
    tmp_path: Path, second: str
) -> None:
    state = tmp_path / "state"
    with running(state, SOCKET) as owner, connect(state / "daemon.sock") as connection:
        (state / "daemon.sock").unlink()
        assert_refused(state, second, owner)
        assert not (state / "daemon.sock").exists()
        ping_socket(connection)  # the first daemon still serves its clients
        owner.kill_9()
        with running(state, second) as successor:
            assert successor.stop() == 0


def test_a_process_listening_on_the_socket_refuses_the_daemon_in_one_line(
    tmp_path: Path,
) -> None:
    """A listener that takes no owner lock (not a cutter daemon of this version) is
    named by the kernel's peer credentials; the daemon does not remove its socket."""
    state = tmp_path / "state"
    state.mkdir()
    path = state / "daemon.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen()
        done = cutter("daemon", "--state-dir", str(state))
        assert done.returncode == EXIT_STATE_DIR_BUSY, done.stderr
        assert done.stderr.splitlines() == [
            f"Error: E_STATE_DIR_BUSY: state directory {state} is owned by pid {os.getpid()} "
            f"(a process listening on the socket), which holds {path}"
        ]
        assert path.is_socket()


def test_the_demo_is_refused_on_a_state_directory_a_daemon_owns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running(state, SOCKET) as owner:
        before = snapshot(state)
        done = cutter("demo", "--state-dir", str(state))
        assert done.returncode == EXIT_STATE_DIR_BUSY, done.stderr
        assert done.stderr.splitlines() == [
            f"Error: E_STATE_DIR_BUSY: state directory {state} is owned by pid {owner.pid} "
            f"({owner.holder}), which holds {state / 'owner.pid'}"
        ]
        assert snapshot(state) == before
        owner.ping()


def test_add_document_works_beside_the_daemon_that_owns_the_state_directory(
    tmp_path: Path,
) -> None:
    """Publishing a version while a daemon runs is the normal workflow: not refused."""
    state = tmp_path / "state"
    with running(state, SOCKET) as owner:
        add_document(DOC_ID, SAMPLE, state_dir=state)
        run = anyio.run(start_run, state / "daemon.sock", Mode.DRY_RUN)
        assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert owner.stop() == 0


@pytest.mark.parametrize(
    "args",
    [
        ["daemon"],
        ["daemon", "--stdio", "--log", "{tmp}/stdio.log"],
        ["demo"],
        ["add-document", "doc-1", str(SAMPLE)],
    ],
    ids=["daemon", "daemon-stdio", "demo", "add-document"],
)
def test_a_state_dir_below_a_regular_file_is_one_line(tmp_path: Path, args: list[str]) -> None:
    regular = tmp_path / "some-file"
    regular.write_bytes(b"not a directory")
    state = regular / "sub"
    command, *rest = (a.replace("{tmp}", str(tmp_path)) for a in args)
    done = cutter(command, "--state-dir", str(state), *rest)
    assert done.returncode == EXIT_ERROR, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: E_STATE_DIR_UNUSABLE: state directory {state} cannot be used: Not a directory"
    ]
    assert regular.read_bytes() == b"not a directory"


@pytest.mark.parametrize(
    "args",
    [
        ["daemon"],
        ["daemon", "--stdio", "--log", "{tmp}/stdio.log"],
        ["demo"],
        ["add-document", "doc-1", str(SAMPLE)],
        ["doctor"],
        ["verify-ledger"],
    ],
    ids=["daemon", "daemon-stdio", "demo", "add-document", "doctor", "verify-ledger"],
)
def test_a_state_dir_of_the_old_file_stores_is_refused_in_one_line(
    tmp_path: Path, args: list[str]
) -> None:
    """No release used the file stores, so nothing migrates them; a state directory
    they wrote is named, with what to do, and left exactly as it was."""
    state = tmp_path / "state"
    for name in ("kb", "runs", "target"):
        (state / name).mkdir(parents=True)
    (state / "runs" / "run-0123456789abcdef.json").write_bytes(b"{}")
    before = snapshot(state)
    command, *rest = (a.replace("{tmp}", str(tmp_path)) for a in args)
    done = cutter(command, "--state-dir", str(state), *rest)
    assert done.returncode == EXIT_ERROR, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: E_STATE_DIR_UNUSABLE: state directory {state} cannot be used: it holds "
        "the file stores of an earlier cutter (kb, runs, target), which this one does not "
        "read (no release used them): move it aside and start afresh there, adding the "
        "documents again (cutter add-document)"
    ]
    assert "Traceback" not in done.stdout
    assert snapshot(state) == before
    assert not (tmp_path / "stdio.log").exists()


def test_add_documents_write_while_the_daemon_walks_runs(tmp_path: Path) -> None:
    """Both processes write the one database at once — the daemon its runs' records,
    each ``add-document`` a version — and every write lands whole: SQLite's lock
    orders the transactions (a writer waits for the other's, never half-applies)."""
    state = tmp_path / "state"
    walked = [f"doc-walk-{i}" for i in range(4)]
    added = [f"doc-new-{i}" for i in range(6)]
    for doc_id in walked:
        add_document(doc_id, SAMPLE, state_dir=state)

    async def add(doc_id: str) -> None:
        command = ["add-document", "--state-dir", str(state), doc_id, str(SAMPLE)]
        done = await anyio.run_process(
            [sys.executable, "-m", "cutter", *command],
            cwd=ROOT,
            env=_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr

    async def walk(socket: Path, doc_id: str) -> None:
        run = await start_run(socket, Mode.DRY_RUN, doc_id)
        for _ in range(2):
            run = (await approve(socket, run)).run
        assert run.state is RunState.CLOSEOUT_REPORTED, run

    async def both(socket: Path) -> None:
        async with anyio.create_task_group() as tg:
            for doc_id in walked:
                tg.start_soon(walk, socket, doc_id)
            for doc_id in added:
                tg.start_soon(add, doc_id)

    with running(state, SOCKET) as owner:
        anyio.run(both, state / "daemon.sock")
        assert owner.stop() == 0
    current = dict(query(state, "SELECT doc_id, current_sv_id FROM documents"))
    assert sorted(current) == sorted(walked + added)
    assert query(state, "SELECT DISTINCT state FROM runs") == [("CLOSEOUT_REPORTED",)]
    assert len(consumed_approvals(state)) == 2 * len(walked)
    doctor = cutter("doctor", "--state-dir", str(state))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
