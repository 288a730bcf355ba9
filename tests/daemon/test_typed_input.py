"""Input that used to crash or pass unseen, through the real CLI and daemon:
an article number of 5,000 digits, a binary file, a UTF-16 file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from cutter.assembly.embedded import embedded_config
from cutter.core.mode import Mode
from cutter.core.states import RunState
from cutter.stores.sqlite.target import SqliteSources
from tests.daemon._drive import add_document, launch, start_run
from tests.daemon.conftest import ROOT
from tests.daemon.test_owner import EXIT_ERROR, _env, cutter

pytestmark = pytest.mark.subprocess

HUGE = "7" * 5000  # over Python's 4,300-digit int() limit
BINARY = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
UTF16 = "# Charter\n\nArticle 1\n\nText.\n".encode("utf-16")


def huge_numbered(tmp_path: Path) -> Path:
    path = tmp_path / "huge.md"
    path.write_text(
        f"# Charter\n\nArticle 1\n\nOne.\n\nArticle {HUGE}\n\nTwo.\n\nArticle 3\n\nThree.\n"
    )
    return path


def review(socket: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cutter", "review", run_id, "--socket", str(socket)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_plan_of_a_5000_digit_article_number_warns_instead_of_crashing(tmp_path: Path) -> None:
    done = cutter("plan", str(huge_numbered(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "warning: unit number too long to check its order: 5000 characters (line 7)" in (
        done.stdout
    )


def test_a_run_of_a_5000_digit_article_number_reaches_its_gate(tmp_path: Path) -> None:
    state = tmp_path / "state"
    add_document("huge", huge_numbered(tmp_path), state_dir=state)
    daemon = launch(state)
    try:
        run = anyio.run(start_run, daemon.socket, Mode.DRY_RUN, "huge")
        assert run.stop_code == "STOP_APPROVAL_REQUIRED", run  # on main: STOP_PHASE_FAILED
        assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
        shown = review(daemon.socket, run.run_id)
        assert shown.returncode == 0, shown.stderr
        assert "unit number too long to check its order" in shown.stdout
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_binary_and_utf16_files_are_refused_by_plan_and_add_document(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for name, data, reason in [
        ("binary", BINARY, "the source is binary, not text (a NUL byte at offset 7)"),
        ("utf16", UTF16, "the source is UTF-16 (little-endian) text (byte order mark)"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        for args in (
            ["plan", str(path)],
            ["add-document", "--state-dir", str(state), name, str(path)],
        ):
            done = cutter(*args)
            assert done.returncode == EXIT_ERROR, (args, done.stdout)
            (line,) = done.stderr.splitlines()
            assert line.startswith(f"Error: E_DOCUMENT_NOT_TEXT: {reason}"), line
            assert done.stdout == ""
    assert not (state / "cutter.sqlite3").exists()  # nothing was stored


async def publish_binary(state: Path) -> None:
    """Through the store's own API, which (unlike add-document) takes any bytes."""
    async with embedded_config(state) as config:
        sources = config.target.sources
        assert isinstance(sources, SqliteSources)
        await sources.publish("blob", BINARY)


def test_a_binary_document_stored_another_way_is_flagged_in_the_review(tmp_path: Path) -> None:
    state = tmp_path / "state"
    add_document(state_dir=state)  # makes the state directory as add-document does
    anyio.run(publish_binary, state)
    daemon = launch(state)
    try:
        run = anyio.run(start_run, daemon.socket, Mode.DRY_RUN, "blob")
        assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
        shown = review(daemon.socket, run.run_id)
        assert shown.returncode == 0, shown.stderr
        assert "the source is binary, not text (a NUL byte at offset 7)" in shown.stdout
        assert daemon.stop() == 0
    finally:
        daemon.kill()
