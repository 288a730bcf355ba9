"""The real daemon, as a subprocess, for end-to-end tests.

``start_daemon(state_dir, *args, env=...)`` launches ``python -m cutter daemon``
with JSON logs on its stdout and returns once it logged ``daemon_started`` —
waiting on that line, never on a timer. ``DaemonProcess.stop()`` sends SIGTERM
and waits for exit code 0; ``kill()`` is ``kill -9``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


@dataclass
class DaemonProcess:
    process: subprocess.Popen[bytes]
    state_dir: Path
    events: list[dict[str, object]] = field(default_factory=list)
    _reader: threading.Thread | None = None
    _started: threading.Event = field(default_factory=threading.Event)

    @property
    def socket(self) -> Path:
        return self.state_dir / "daemon.sock"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            self.events.append(event)
            if event.get("event") == "daemon_started":
                self._started.set()
        self._started.set()  # exited: wake the waiter either way

    def wait_started(self) -> None:
        if not self._started.wait(START_TIMEOUT) or self.process.poll() is not None:
            raise RuntimeError(f"daemon did not start (exit {self.process.poll()})")

    def stop(self) -> int:
        """SIGTERM, then the exit code (the daemon drains and exits 0)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self._wait()

    def kill(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        return self._wait()

    def _wait(self) -> int:
        code = self.process.wait(timeout=60)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code

    def named(self, event: str) -> list[dict[str, object]]:
        return [e for e in list(self.events) if e.get("event") == event]


def start_daemon(
    state_dir: Path, *args: str, env: dict[str, str] | None = None, open_files: int | None = None
) -> DaemonProcess:
    """``open_files``: the daemon's RLIMIT_NOFILE, soft and hard (it cannot raise it)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}

    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    process = subprocess.Popen(
        [sys.executable, "-m", "cutter", "daemon", "--state-dir", str(state_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=environment,
        cwd=ROOT,
        preexec_fn=limit_files if open_files is not None else None,
    )
    daemon = DaemonProcess(process, state_dir)
    daemon._reader = threading.Thread(target=daemon._read, daemon=True)
    daemon._reader.start()
    daemon.wait_started()
    return daemon


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts; any still running at the end are killed."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()
