"""``cutter daemon --hooks-dir DIR``: a hooks directory another user could write to is
refused at start, in one line, before the daemon serves anything (docs/operations.md,
Hooks); the state directory's own ``hooks/`` is made private by the start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.conftest import ROOT, START_TIMEOUT, DaemonProcess, start_daemon

pytestmark = pytest.mark.subprocess


def test_a_hooks_directory_others_may_write_refuses_the_start(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hooks.chmod(0o777)
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-m", "cutter", "daemon", "--state-dir", str(state),
         "--hooks-dir", str(hooks)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=START_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: E_HOOKS_DIR_UNSAFE: hooks directory {hooks} is not safe to run from: "
        "the directory is writable by others (mode 0777)"
    ]
    assert not (state / "daemon.sock").exists()


def test_the_state_directorys_own_hooks_are_made_private_and_checked(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state = tmp_path / "state"
    hooks = state / "hooks"
    hooks.mkdir(parents=True)
    hooks.chmod(0o777)
    (hooks / "not-an-event").write_text("#!/bin/sh\n")
    daemon = start_daemon(state)
    daemons.append(daemon)
    assert stat.S_IMODE(hooks.stat().st_mode) == 0o700
    assert [e["path"] for e in daemon.named("hook_ignored")] == [str(hooks / "not-an-event")]
    assert daemon.stop() == 0
