"""What clients may hold of a real daemon: connections, time, buffered bytes
(``cutter.daemon.limits``).

Deadlines are configured very small and every wait is on something the daemon
does (a frame, the end of a stream); nothing here is timed. The memory figure is
a bound derived from the buffer budget, read from /proc, not a timing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cutter.core.protocol import (
    MAX_FRAME_BYTES,
    AbortRun,
    AnyReply,
    Error,
    Event,
    Ping,
    Pong,
    RunInfo,
    Start,
    Watch,
    decode_reply,
    encode,
)
from tests.daemon._drive import DOC_ID, OPERATOR, add_document
from tests.daemon.conftest import DaemonProcess, start_daemon

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

MIB = 1 << 20
GUARD = 120  # seconds: only so a hung daemon fails the test instead of the suite
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


async def read_reply(stream: SocketStream) -> AnyReply | None:
    """The next frame the daemon sends on ``stream``; None when it closed instead."""
    reader = BufferedByteReceiveStream(stream)
    try:
        return decode_reply(await reader.receive_until(b"\n", MAX_FRAME_BYTES))
    except (anyio.IncompleteRead, *_GONE):
        return None


async def ping(stream: SocketStream, tag: str) -> AnyReply | None:
    """Ping on an open connection; what comes back (a refusal sent before it, too)."""
    with contextlib.suppress(*_GONE):  # refused and closed already: its refusal is still there
        await stream.send(encode(Ping(id=tag)))
    return await read_reply(stream)


async def closed_after_reply(stream: SocketStream) -> tuple[AnyReply | None, bool]:
    """The daemon's last frame on ``stream`` and whether the stream then ended."""
    reply = await read_reply(stream)
    try:
        rest = await stream.receive()
    except _GONE:
        return reply, True
    return reply, rest == b""


def vm_rss(pid: int) -> int:
    """The resident set of process ``pid``, in bytes (/proc/PID/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def test_excess_connections_are_refused_typed_and_the_daemon_serves(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """With 128 descriptors allowed (soft and hard), 150 idle connections used to
    make accept fail with EMFILE and the daemon exit. Now the connection limit is
    fitted under the descriptors: the excess is refused E_TOO_MANY_CONNECTIONS,
    every connection within the limit is served, and a slot freed is reused."""
    daemon = start_daemon(tmp_path / "state", open_files=128)
    daemons.append(daemon)
    with anyio.fail_after(GUARD):
        streams = [await anyio.connect_unix(daemon.socket) for _ in range(150)]
        replies = [await ping(stream, f"p{i}") for i, stream in enumerate(streams)]
        assert daemon.process.poll() is None
        served = [s for s, r in zip(streams, replies, strict=True) if isinstance(r, Pong)]
        refused = [r for r in replies if not isinstance(r, Pong)]
        assert all(isinstance(r, Error) and r.code == "E_TOO_MANY_CONNECTIONS" for r in refused)
        (lowered,) = daemon.named("connection_limit_lowered")
        limit = lowered["max_connections"]
        assert isinstance(limit, int)
        assert 0 < limit < 128
        assert len(served) == limit
        assert len(refused) == 150 - limit
        # Every held connection is still served, after the refusals.
        for i, stream in enumerate(served):
            assert isinstance(await ping(stream, f"again{i}"), Pong)
        # A slot freed is a slot a new client gets (once the daemon saw the close).
        await served.pop().aclose()
        while True:
            async with await anyio.connect_unix(daemon.socket) as fresh:
                reply = await ping(fresh, "fresh")
            if isinstance(reply, Pong):
                break
            assert isinstance(reply, Error)
            assert reply.code == "E_TOO_MANY_CONNECTIONS"
            await anyio.sleep(0.01)  # back-off between retries, not a synchronisation
        for stream in streams:
            await stream.aclose()
    assert daemon.stop() == 0
    assert len(daemon.named("connection_refused")) >= 150 - limit


async def test_an_idle_connection_is_closed_and_a_quiet_watcher_is_not(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A connection that sends nothing for --idle-timeout is told E_IDLE_TIMEOUT and
    closed, with a log line. A watcher that sends nothing is alive as long as it
    takes its events: one subscribed before that idle connection opened still gets
    the events after it was closed."""
    state_dir = tmp_path / "state"
    add_document(state_dir=state_dir)
    daemon = start_daemon(state_dir, "--idle-timeout", "0.2")
    daemons.append(daemon)
    with anyio.fail_after(GUARD):
        watcher = await anyio.connect_unix(daemon.socket)
        await watcher.send(encode(Watch(id="w")))
        events = BufferedByteReceiveStream(watcher)
        async with await anyio.connect_unix(daemon.socket) as control:
            await control.send(encode(Start(id="s", doc_id=DOC_ID, started_by=OPERATOR)))
            started = await read_reply(control)
        assert isinstance(started, RunInfo), started
        run_id = started.run.run_id
        first = decode_reply(await events.receive_until(b"\n", MAX_FRAME_BYTES))
        assert isinstance(first, Event)  # subscribed; from here on the watcher is silent

        async with await anyio.connect_unix(daemon.socket) as idle:
            reply, ended = await closed_after_reply(idle)
        assert isinstance(reply, Error)
        assert reply.code == "E_IDLE_TIMEOUT"
        assert ended

        async with await anyio.connect_unix(daemon.socket) as control:
            await control.send(encode(AbortRun(id="a", run_id=run_id, reason="test", by=OPERATOR)))
            assert not isinstance(await read_reply(control), Error)
        while True:  # past what the start emitted, to the abort's transition
            after = decode_reply(await events.receive_until(b"\n", MAX_FRAME_BYTES))
            assert isinstance(after, Event), after
            assert after.run_id == run_id, after
            if "ABORTED" in after.detail.values():
                break
        await watcher.aclose()
    assert daemon.stop() == 0
    assert daemon.named("connection_idle_closed")


async def test_a_frame_must_be_complete_within_the_frame_deadline(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Half a frame, then nothing: E_FRAME_TIMEOUT and the connection closed, while
    the idle deadline (long) has not come; the daemon serves on."""
    daemon = start_daemon(tmp_path / "state", "--frame-timeout", "0.2", "--idle-timeout", "3600")
    daemons.append(daemon)
    with anyio.fail_after(GUARD):
        async with await anyio.connect_unix(daemon.socket) as slow:
            await slow.send(b'{"cmd":"ping","id":"sl')
            reply, ended = await closed_after_reply(slow)
        assert isinstance(reply, Error), reply
        assert reply.code == "E_FRAME_TIMEOUT", reply
        assert ended
        async with await anyio.connect_unix(daemon.socket) as fresh:
            assert isinstance(await ping(fresh, "after"), Pong)
    assert daemon.stop() == 0
    assert daemon.named("frame_timed_out")


BUDGET_MIB = 64  # the default --buffer-budget
HALF_SENT = 300
# What the daemon may grow by while 300 clients each hold an unfinished 1 MiB
# frame: the budget, once more for the allocator's slack and the copies a read
# makes, and 32 MiB for 300 connections' tasks and buffers. Unbounded, the
# daemon grew by about 300 MiB (issue 12).
RSS_GROWTH_BOUND = 2 * BUDGET_MIB * MIB + 32 * MIB


async def test_half_sent_frames_are_bounded_by_the_buffer_budget(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """300 clients each send 1 MiB of a frame and no newline. The daemon holds at
    most --buffer-budget of them: the rest are refused E_BUFFER_BUDGET_EXCEEDED and
    closed, ping is answered throughout, and its memory stays under a bound
    derived from the budget. (Before the budget: VmRSS 46 -> 369 MiB, all held.)"""
    daemon = start_daemon(tmp_path / "state")  # the default limits
    daemons.append(daemon)
    payload = b'{"cmd":"ping","id":"' + b"x" * (MAX_FRAME_BYTES - 32)
    refusals: list[AnyReply | None] = []
    held: list[SocketStream] = []
    with anyio.fail_after(GUARD):
        async with await anyio.connect_unix(daemon.socket) as probe:
            assert isinstance(await ping(probe, "before"), Pong)
            before = vm_rss(daemon.process.pid)

            async def half_send(i: int) -> None:
                stream = await anyio.connect_unix(daemon.socket)
                try:
                    await stream.send(payload)
                except _GONE:
                    refusals.append(await read_reply(stream))
                    await stream.aclose()
                    return
                held.append(stream)

            async with anyio.create_task_group() as tg:
                for i in range(HALF_SENT):
                    tg.start_soon(half_send, i)
            assert isinstance(await ping(probe, "during"), Pong)
            during = vm_rss(daemon.process.pid)
        for stream in held:
            await stream.aclose()
    assert daemon.process.poll() is None
    print(f"VmRSS {before / MIB:.1f} -> {during / MIB:.1f} MiB; {len(held)} held")
    assert during - before < RSS_GROWTH_BOUND
    # The daemon reads a frame only within the budget, and a send of 1 MiB
    # completes only once the daemon read most of it: few can be held.
    assert len(held) <= 2 * BUDGET_MIB
    assert len(refusals) == HALF_SENT - len(held)
    assert all(isinstance(r, Error) and r.code == "E_BUFFER_BUDGET_EXCEEDED" for r in refusals)
    assert daemon.stop() == 0
