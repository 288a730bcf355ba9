"""The real daemon: a huge command id is logged bounded (and echoed whole); the temp
files a crash left in its state directory are removed at start, nothing else is."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anyio

from cutter.daemon.logid import LOGGED_ID_CHARS
from cutter.protocol import Error, StatusOf
from cutter.stores.sweep import MIN_AGE_SECONDS
from tests.daemon._drive import add_document, ask, launch


def test_a_megabyte_command_id_is_logged_as_a_bounded_prefix_and_hash(tmp_path: Path) -> None:
    state = tmp_path / "state"
    daemon = launch(state)
    try:
        huge = "x" * 1000 + "y" * (900_000 - 1000)
        reply = anyio.run(ask, daemon.socket, StatusOf(id=huge, run_id="run-0123456789abcdef"))
        assert isinstance(reply, Error)
        assert reply.id == huge  # the reply still echoes it whole
        (received,) = daemon.named("command_received")
        logged = str(received["id"])
        assert len(logged) < 2 * LOGGED_ID_CHARS
        assert logged.startswith("x" * 32)
        assert hashlib.sha256(huge.encode()).hexdigest()[:16] in logged
        assert "900000 chars" in logged
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_temp_files_a_crash_left_are_removed_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)
    sources = next((state / "target" / "sources").rglob("*.json")).parent
    crash_left = [
        state / "runs" / ".run-0123456789abcdef.json.0123456789ab.tmp",
        sources / ".HEAD.json.fedcba987654.tmp",
    ]
    kept = [state / "notes.tmp", sources / ".HEAD.json.tmp"]
    for path in crash_left + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a record")
        old = os.stat(path).st_mtime - MIN_AGE_SECONDS - 1
        os.utime(path, (old, old))
    daemon = launch(state)
    try:
        (swept,) = daemon.named("temp_files_removed")
        assert swept["count"] == len(crash_left)
        assert not any(path.exists() for path in crash_left)
        assert all(path.exists() for path in kept)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
