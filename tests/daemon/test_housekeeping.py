"""The real daemon: a huge command id is logged bounded (and echoed whole)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest

from cutter.core.protocol import Error, StatusOf
from cutter.daemon.logid import LOGGED_ID_CHARS
from tests.daemon._drive import ask, launch

pytestmark = pytest.mark.subprocess


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
