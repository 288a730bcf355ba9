"""Start ``tests.sqlite._child`` processes and talk to them line by line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Child:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.sqlite._child", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def line(self) -> str:
        """The next line the child printed; a child that ended instead fails the test."""
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline()
        if not text:
            self.proc.wait()
            err = self.proc.stderr.read() if self.proc.stderr is not None else ""
            raise AssertionError(f"the child ended ({self.proc.returncode}): {err}")
        return text.strip()

    def expect(self, wanted: str) -> None:
        assert self.line() == wanted

    def send(self, text: str = "go") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """``kill -9``: no cleanup, no flush, no close of the database."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def finish(self) -> str:
        """The rest of the output once the child exited cleanly."""
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        return out.strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def child(*args: str) -> Iterator[Child]:
    proc = Child(*args)
    try:
        yield proc
    finally:
        proc.close()
