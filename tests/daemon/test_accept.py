"""Accepting connections through a shortage of descriptors (``cutter.daemon.accept``),
with a listener that fails as a process out of them does."""

from __future__ import annotations

import errno
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream

from cutter.daemon.accept import accept_loop
from cutter.daemon.limits import ConnectionLimits, Connections

pytestmark = pytest.mark.anyio

GUARD = 60  # seconds: only so a hang fails the test instead of the suite


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = warning


class _ShortListener:
    """Fails like a process out of descriptors, then accepts, then ends."""

    def __init__(self, failures: list[BaseException], stream: ByteStream) -> None:
        self.failures = failures
        self.stream: ByteStream | None = stream

    async def accept(self) -> ByteStream:
        if self.failures:
            raise self.failures.pop(0)
        if self.stream is not None:
            stream, self.stream = self.stream, None
            return stream
        raise anyio.BrokenResourceError from OSError(errno.EBADF, "listener gone")


async def test_accept_backs_off_when_descriptors_run_out() -> None:
    """EMFILE and ENFILE from accept itself are a shortage to wait out, not the end
    of the daemon: logged, backed off, and the next connection is served. Any other
    failure of the listener still ends the loop."""
    stream: Any = object()  # what the listener hands over; handle only records it
    emfile = anyio.BrokenResourceError()
    emfile.__cause__ = OSError(errno.EMFILE, "Too many open files")
    enfile = OSError(errno.ENFILE, "Too many open files in system")
    listener = _ShortListener([emfile, enfile], stream)
    handled: list[object] = []

    async def handle(s: ByteStream) -> None:
        handled.append(s)

    log = _Log()
    ended = False
    with anyio.fail_after(GUARD):
        try:
            await accept_loop(listener, Connections(ConnectionLimits()), handle, log, backoff=0)
        except* anyio.BrokenResourceError:
            ended = True
    assert ended
    assert handled == [stream]
    assert [(e, f["errno"]) for e, f in log.lines] == [
        ("accept_failed", "EMFILE"),
        ("accept_failed", "ENFILE"),
    ]
