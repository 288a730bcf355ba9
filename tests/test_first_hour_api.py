"""The first hour without the daemon (issue 12, §7): ``cutter --version``, the exit
statuses in the help and the protocol doc, a documented way to build a ``RunnerConfig``,
a library that prints nothing, the daemon's short terminal lines, and docs that match
what the code does."""

from __future__ import annotations

import io
import re
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

import cutter
from cutter.cli.main import main
from cutter.core.mode import Mode
from cutter.core.states import RunState

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "cutter" / "samples" / "garden-charter.md"


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"cutter, version {version('iu-cutter')}\n"


def test_the_help_and_the_protocol_doc_give_the_exit_statuses() -> None:
    help_text = CliRunner().invoke(main, ["--help"]).output
    assert re.search(r"^\s+4\s+the run stopped: FAILED", help_text, re.M), help_text
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    for row in ("| 0 |", "| 1 |", "| 2 |", "| 4 |", "| 130 |"):
        assert row in protocol


@pytest.mark.anyio
async def test_embedded_config_builds_a_runner_config(tmp_path: Path) -> None:
    async with cutter.embedded_config(tmp_path / "state") as config:
        await config.target.sources.publish("doc-1", SAMPLE.read_bytes())  # type: ignore[attr-defined]
        async with cutter.Runner(config) as runner:
            sidecar = await runner.cut("doc-1", Mode.DRY_RUN, started_by="ann")
        assert sidecar.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert config.policy.required_approvals == 1
        assert not config.policy.allow_self_approval
    # The daemon's database: the run is there for `cutter daemon --state-dir` to serve.
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["cutter.sqlite3"]
    with closing(sqlite3.connect(tmp_path / "state" / "cutter.sqlite3")) as db:
        assert db.execute("SELECT run_id, state FROM runs").fetchall() == [
            (sidecar.run_id, "AWAITING_CUT_AUTHORIZATION")
        ]


@pytest.mark.subprocess
def test_the_library_prints_nothing(tmp_path: Path) -> None:
    """A program that drives a Runner (its config built by hand, as it could be on any
    version) sees none of cutter's events on its own stdout or stderr."""
    program = textwrap.dedent(
        f"""
        import anyio
        from pathlib import Path
        from cutter import GatePolicy, Mode, Runner, embedded_config

        async def main():
            async with embedded_config(Path({str(tmp_path)!r}), policy=GatePolicy()) as config:
                await config.target.sources.publish("doc-1", Path({str(SAMPLE)!r}).read_bytes())
                async with Runner(config) as runner:
                    sidecar = await runner.cut("doc-1", Mode.DRY_RUN, started_by="ann")
            print("ended", sidecar.state.value)

        anyio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ended AWAITING_CUT_AUTHORIZATION\n"
    assert done.stderr == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_sinks_by_default() -> None:
    from cutter.daemon.console import Sinks, choose_sinks

    piped, tty, log = io.StringIO(), _Terminal(), io.StringIO()
    # No --log: a terminal gets short lines only; anything else JSON.
    assert choose_sinks(None, tty, tty) == Sinks(json=None, human=tty)
    assert choose_sinks(None, piped, tty) == Sinks(json=piped, human=None)
    # --log FILE: JSON there; short lines on stderr only when it is a terminal.
    assert choose_sinks(log, tty, tty) == Sinks(json=log, human=tty)
    assert choose_sinks(log, tty, piped) == Sinks(json=log, human=None)


def test_short_lines_say_what_changed() -> None:
    from cutter.daemon.console import human_line

    changed = {
        "event": "run_state_changed",
        "run_id": "run-1",
        "from_state": "RUNNING",
        "to_state": "FAILED",
        "stop_code": "STOP_DRIFT",
        "doc_id": "doc-1",
    }
    line = human_line(changed)
    assert line is not None
    assert line.endswith("run-1  run_state_changed   RUNNING -> FAILED (STOP_DRIFT)")
    failed = human_line({"event": "command_failed", "id": "7", "error_id": "abc123"})
    assert failed is not None
    assert failed.endswith("daemon  command_failed      7 abc123")
    assert human_line({"event": "command_received", "cmd": "Ping"}) is None
    assert human_line({"event": "phase_started", "run_id": "run-1", "phase": "mark"}) is None


def test_docs_match_the_code() -> None:
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    assert "known bug" not in protocol  # `shutdown` is answered (tests/daemon/test_cli.py)
    assert '< {"reply":"shutting_down","v":1,"id":"5"}' in protocol
    # The README's commands work without an activated venv.
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    commands = [line for block in blocks for line in block.splitlines()]
    assert commands
    assert not [line for line in commands if re.match(r"cutter\b", line)], commands


def test_the_daemon_drops_only_asyncios_reaped_elsewhere_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one benign asyncio line the daemon printed after daemon_stopped, unformatted,
    on an operator's terminal (a discovery worker reaped by Popen's poll as anyio killed
    it at shutdown) is filtered; any other asyncio warning still reaches the log."""
    import logging

    import structlog

    from cutter.daemon.console import Sinks, configure

    log = logging.getLogger("asyncio")
    before, config = list(log.filters), structlog.get_config()
    try:
        configure(Sinks(json=io.StringIO(), human=None))
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            log.warning("Unknown child process pid %d, will report returncode 255", 4242)
            log.warning("Loop %r that handles pid %r is closed", "loop", 4242)
        assert [r.getMessage() for r in caplog.records] == [
            "Loop 'loop' that handles pid 4242 is closed"
        ]
    finally:
        log.filters[:] = before
        structlog.configure(**config)
