"""A full disk and a read-only state directory, for real: a small tmpfs (and a read-only
bind mount of it) under the test's directory, which needs root and a kernel that lets
it mount (``tests._mounts``: a CI container as root does; elsewhere the tests skip,
and under ``CI=true`` they fail rather than skip).

Every write answers a typed code (``E_STORAGE_FULL``; ``E_STORAGE_READ_ONLY`` for a
process that opens the database on a read-only directory) and
changes nothing (SQLite rolls the transaction back), and the same command succeeds
once there is space again; a daemon refused a read-only state
directory says so in one line; SIGTERM on a read-only directory exits 0.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from cutter.core.mode import Mode
from cutter.core.protocol import AbortRun, Error, RunInfo, Start
from cutter.core.states import RunState
from tests._mounts import fill, read_only, tmpfs
from tests.daemon._db import contents, sidecars_stored
from tests.daemon._drive import OPERATOR, SAMPLE, add_document, ask, launch, start_run, status
from tests.daemon.test_owner import EXIT_ERROR, cutter

pytestmark = pytest.mark.subprocess


def no_traceback(stderr_dir: Path) -> None:
    for path in stderr_dir.glob("*.stderr"):
        assert "Traceback" not in path.read_text(errors="replace"), path


def test_a_full_disk_answers_e_storage_full_and_changes_nothing(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt") as mount:
        state = mount / "state"
        add_document(state_dir=state)
        daemon = launch(state)
        try:
            run = anyio.run(start_run, daemon.socket, Mode.DRY_RUN)
            assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
            before = sidecars_stored(state)
            fill(mount)
            abort = AbortRun(id="abort", run_id=run.run_id, reason="disk full", by=OPERATOR)
            reply = anyio.run(ask, daemon.socket, abort)
            assert isinstance(reply, Error), reply
            assert reply.code == "E_STORAGE_FULL", reply
            assert str(state / "cutter.sqlite3") in reply.message
            start = Start(id="again", doc_id="other", started_by=OPERATOR, mode=Mode.DRY_RUN)
            assert isinstance(anyio.run(ask, daemon.socket, start), Error)
            assert sidecars_stored(state) == before
            assert anyio.run(status, daemon.socket, run.run_id).state is run.state
            (mount / "filler").unlink()  # space again: the same command now succeeds
            assert not isinstance(anyio.run(ask, daemon.socket, abort), Error)
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        no_traceback(mount)


def test_a_read_only_state_dir_answers_typed_and_sigterm_exits_0(tmp_path: Path) -> None:
    """The directory turns read-only under a running daemon. The daemon's database is
    open already (its writes go on through the open files); a new process that opens
    it to write (add-document) is refused in one typed line and changes nothing; the
    daemon stops with 0 though it cannot remove its socket."""
    with tmpfs(tmp_path / "mnt") as mount:
        state = mount / "state"
        add_document(state_dir=state)
        daemon = launch(state)
        try:
            run = anyio.run(start_run, daemon.socket, Mode.DRY_RUN)
            with read_only(state):
                before = contents(state)
                done = cutter("add-document", "--state-dir", str(state), "doc-2", str(SAMPLE))
                assert done.returncode == EXIT_ERROR, done.stderr
                [line] = done.stderr.splitlines()
                assert line.startswith("Error: E_STORAGE_READ_ONLY: "), line
                assert contents(state) == before
                abort = AbortRun(id="abort", run_id=run.run_id, reason="ro", by=OPERATOR)
                reply = anyio.run(ask, daemon.socket, abort)
                assert isinstance(reply, RunInfo), reply
                assert reply.run.state is RunState.ABORTED
                assert daemon.stop() == 0  # on main: 1, an OSError traceback on unlink
                (left,) = daemon.named("socket_not_removed")
                assert left["code"] == "E_STORAGE_READ_ONLY"
                assert daemon.named("daemon_stopped")
            # The next start takes the stale socket over.
            again = launch(state)
            assert again.stop() == 0
            assert not (state / "daemon.sock").exists()
        finally:
            daemon.kill()
        no_traceback(mount)


def test_a_daemon_on_a_read_only_state_dir_is_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt") as mount:
        state = mount / "state"
        add_document(state_dir=state)
        with read_only(state):
            done = cutter("daemon", "--state-dir", str(state))
            log = cutter("daemon", "--state-dir", str(tmp_path / "rw"), "--log", str(state / "x"))
        assert done.returncode == EXIT_ERROR, done.stderr
        assert done.stderr.splitlines() == [
            f"Error: E_STORAGE_READ_ONLY: cannot write {state / 'owner.pid'}: Read-only file system"
        ]
        assert log.returncode == EXIT_ERROR, log.stderr
        assert log.stderr.splitlines() == [
            f"Error: E_STORAGE_READ_ONLY: cannot write {state / 'x'}: Read-only file system"
        ]
