"""``cutter.stores.owner``: the lock that gives a state directory one owner.

A ``flock`` belongs to an open file description, so two ``claim`` calls in this
one process contend exactly as two processes do; ``tests/daemon/test_owner.py``
runs real daemons against each other.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cutter.core.errors import StateDirBusy, StateDirUnusable
from cutter.core.state_dir import StateDir
from cutter.stores.owner import claim


def test_a_second_claim_is_refused_naming_the_owner_and_leaves_its_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with claim(state, "cutter daemon --stdio") as owner:
        assert owner.held
        written = (StateDir(state).owner_lock).read_bytes()
        assert written == f"{os.getpid()}\ncutter daemon --stdio\n".encode()
        with pytest.raises(StateDirBusy) as refused:
            claim(state, "cutter demo")
        assert refused.value.code == "E_STATE_DIR_BUSY"
        assert (refused.value.pid, refused.value.holder) == (os.getpid(), "cutter daemon --stdio")
        assert refused.value.held == str(StateDir(state).owner_lock)
        assert refused.value.message == (
            f"state directory {state} is owned by pid {os.getpid()} (cutter daemon --stdio), "
            f"which holds {StateDir(state).owner_lock}"
        )
        # The refused claimant opened the file without truncating it.
        assert (StateDir(state).owner_lock).read_bytes() == written


def test_release_empties_the_file_and_frees_the_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    owner = claim(state, "cutter demo")
    owner.release()
    assert not owner.held
    assert (StateDir(state).owner_lock).read_bytes() == b""
    owner.release()  # twice is harmless
    with claim(state, "cutter daemon --stdio"):
        assert (StateDir(state).owner_lock).read_text().splitlines()[0] == str(os.getpid())


@pytest.mark.subprocess
def test_a_dead_owners_pid_file_does_not_block(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    (StateDir(state).owner_lock).write_text(f"{dead.stdout.strip()}\ncutter daemon on x\n")
    with claim(state, "cutter demo"):
        assert (StateDir(state).owner_lock).read_text() == f"{os.getpid()}\ncutter demo\n"


def test_an_owner_that_has_not_written_its_pid_yet_is_named_as_unknown(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    fd = os.open(StateDir(state).owner_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, nothing written yet
        with pytest.raises(StateDirBusy) as refused:
            claim(state, "cutter demo")
        assert refused.value.pid is None
        assert "a process whose pid is not known yet" in refused.value.message
    finally:
        os.close(fd)


def test_a_garbled_pid_file_under_a_live_lock_names_no_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    fd = os.open(StateDir(state).owner_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, "٣٣\nx\n".encode())  # Arabic-Indic digits: int() takes them, a pid not
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StateDirBusy) as refused:
            claim(state, "cutter demo")
        assert (refused.value.pid, refused.value.holder) == (None, "x")
    finally:
        os.close(fd)


def test_a_state_dir_below_a_regular_file_is_unusable_and_nothing_is_made(
    tmp_path: Path,
) -> None:
    regular = tmp_path / "some-file"
    regular.write_bytes(b"data")
    with pytest.raises(StateDirUnusable) as refused:
        claim(regular / "sub", "cutter demo")
    assert refused.value.code == "E_STATE_DIR_UNUSABLE"
    assert refused.value.message == (
        f"state directory {regular / 'sub'} cannot be used: Not a directory"
    )
    assert regular.read_bytes() == b"data"


def test_a_lock_file_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"keep me")
    (StateDir(state).owner_lock).symlink_to(elsewhere)
    with pytest.raises(StateDirUnusable):
        claim(state, "cutter demo")
    assert elsewhere.read_bytes() == b"keep me"
