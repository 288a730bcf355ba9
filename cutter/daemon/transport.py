"""Byte streams to the daemon: a Unix socket (owner-only, or owner and one group)
and stdin/stdout.

Each connection carries the principal the transport proved (``cutter.core.principals``):
on the socket the peer's uid from the kernel (``SO_PEERCRED``), on stdio the
daemon's own.

One connection reads newline-delimited frames of at most ``MAX_FRAME_BYTES``;
each gets one reply frame, in order. A malformed frame gets an Error and the
connection goes on; an oversize frame gets an Error and the connection is
closed (the rest of it cannot be trusted to be a frame boundary). The limits on
connections, their deadlines and the bytes they buffer are
``cutter.daemon.limits``'s.
"""

from __future__ import annotations

import grp
import os
import socket
import struct
import sys
from pathlib import Path

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import ByteStream, SocketAttribute, TaskStatus

from cutter.core.errors import CutterError, ErrorCode, StateDirBusy, StateDirUnusable
from cutter.core.principals import Caller, own_principal, principal_of_uid
from cutter.core.protocol import (
    MAX_FRAME_BYTES,
    BadFrame,
    Error,
    Frame,
    ShuttingDownReply,
    Watch,
    decode_command,
    encode,
)
from cutter.daemon.accept import accept_loop
from cutter.daemon.frames import FrameReader, FrameRefused
from cutter.daemon.limits import STDIO_LIMITS, ConnectionLimits, Connections
from cutter.daemon.service import Daemon

_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


# A watcher that takes no event for this long is dropped: it must never hold a task.
WATCH_SEND_TIMEOUT = 10.0


def framed(frame: Frame) -> bytes:
    """``frame`` encoded, or, when what the daemon puts in it (all but the id it
    echoes) is longer than a frame may be, an error that says so in its place
    (``E_REPLY_TOO_LARGE``), whatever command produced it."""
    data = encode(frame)
    # The id is the client's own, echoed: a client that sent one near the limit reads
    # it back; what the daemon adds must fit a frame.
    echoed = 0 if frame.id is None else len(msgspec.json.encode(frame.id))
    if len(data) - echoed <= MAX_FRAME_BYTES:
        return data
    return encode(
        Error(
            id=frame.id,
            code=ErrorCode.REPLY_TOO_LARGE,
            message=f"the reply is {len(data)} bytes, over the {MAX_FRAME_BYTES}-byte frame: "
            "ask for less (a page of runs, one run)",
        )
    )


async def send(stream: ByteStream, frame: Frame, *, deadline: float | None = None) -> bool:
    """Send one frame; False when the client has gone (or missed the deadline)."""
    if deadline is None:  # a reply: no cancel scope to build and tear down per frame
        try:
            await stream.send(framed(frame))
        except _GONE:
            return False
        return True
    with anyio.move_on_after(deadline) as scope:
        try:
            await stream.send(framed(frame))
        except _GONE:
            return False
    return not scope.cancelled_caught


async def serve_stream(
    stream: ByteStream, daemon: Daemon, caller: Caller, connections: Connections | None = None
) -> None:
    """Answer the frames of one connection until it closes, or a limit closes it
    (``cutter.daemon.limits``; default: ``STDIO_LIMITS``)."""
    if connections is None:
        connections = Connections(STDIO_LIMITS)
    reader = FrameReader(stream, connections.limits, connections.budget)
    async with stream, reader:
        while True:
            try:
                line = await reader.next_frame()
            except FrameRefused as refused:  # too large, too slow, idle, over the budget
                daemon.log.info(refused.event, code=refused.reply.code, peer=caller.peer)
                await send(stream, refused.reply, deadline=WATCH_SEND_TIMEOUT)
                return
            if line is None:
                return
            if not line.strip():
                continue
            try:
                command = decode_command(line)
            except BadFrame as exc:
                daemon.log.info("frame_refused", code=exc.code, peer=caller.peer)
                if not await send(stream, Error(code=exc.code, message=exc.message)):
                    return
                continue
            if isinstance(command, Watch):
                await _watch(stream, reader, daemon, command, caller)
                return
            reply = await daemon.handle(command, caller)
            sent = await send(stream, reply)
            if isinstance(reply, ShuttingDownReply):
                daemon.stop_requested.set()  # after the answer, so the client gets it
                return
            if not sent:
                return


async def _watch(
    stream: ByteStream,
    reader: FrameReader,
    daemon: Daemon,
    command: Watch,
    caller: Caller,
) -> None:
    """Stream events until the watcher lags, or closes its end. A watcher is never
    idle: what it sends is read only to notice its end, and dropped."""
    async with anyio.create_task_group() as tg:

        async def until_closed() -> None:
            await reader.discard_until_closed()
            tg.cancel_scope.cancel()

        tg.start_soon(until_closed)
        try:
            async for event in daemon.watch(command, caller):
                framed = msgspec.structs.replace(event, id=command.id)
                if not await send(stream, framed, deadline=WATCH_SEND_TIMEOUT):
                    break
            else:
                lagged = Error(
                    id=command.id,
                    code=ErrorCode.WATCH_LAGGED,
                    message="watcher fell behind; dropped",
                )
                await send(stream, lagged, deadline=WATCH_SEND_TIMEOUT)
        except CutterError as exc:
            await send(stream, Error(id=command.id, code=exc.code, message=exc.message))
        tg.cancel_scope.cancel()


def peer_credentials(stream: ByteStream) -> tuple[int, int] | None:
    """The (pid, uid) at the other end of a Unix socket, from the kernel (SO_PEERCRED)."""
    raw = stream.extra(SocketAttribute.raw_socket, None)
    if raw is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, _ = struct.unpack("3i", creds)
    return pid, uid


def peer_of(stream: ByteStream) -> Caller:
    """Who is at the other end of a Unix socket: the principal of the peer's uid, and
    how the log and approvals describe the connection."""
    creds = peer_credentials(stream)
    if creds is None:
        return Caller(principal=None, peer="unix peer without credentials")
    pid, uid = creds
    principal = principal_of_uid(uid)
    return Caller(principal=principal, peer=f"uid={uid}({principal or '?'}) pid={pid}")


def socket_gid(group: str) -> int:
    """The gid of ``--socket-group``; ``StateDirUnusable`` when there is no such group."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise StateDirUnusable("--socket-group", f"no group {group[:40]!r}") from None


async def serve_socket(
    path: Path,
    daemon: Daemon,
    gid: int | None = None,
    limits: ConnectionLimits | None = None,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on a Unix socket only its owner may use (mode 0600), or its owner and
    the members of group ``gid`` (0660); serve clients concurrently, within ``limits``.
    ``claim_socket(path)`` first: the name must be free."""
    old_umask = os.umask(0o177)
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old_umask)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, 0o600 if gid is None else 0o660)
    connections = Connections(limits or ConnectionLimits())

    async def handle(stream: ByteStream) -> None:
        await serve_stream(stream, daemon, peer_of(stream), connections)

    async with listener:
        task_status.started()
        await accept_loop(listener, connections, handle, daemon.log)


async def claim_socket(path: Path) -> None:
    """Remove a stale socket file; ``StateDirBusy`` when a process answers on it.

    The state directory's owner lock (``cutter.stores.owner``) keeps every other
    cutter daemon out already, so a socket file found here is left by a dead one,
    unless a process that takes no such lock listens on it: that one is named."""
    if not await anyio.Path(path).exists():
        return
    try:
        stream = await anyio.connect_unix(path)
    except OSError:
        await anyio.Path(path).unlink()
        return
    async with stream:
        creds = peer_credentials(stream)
    pid = creds[0] if creds is not None else None
    raise StateDirBusy(str(path.parent), str(path), pid, "a process listening on the socket")


class StdioStream(ByteStream):
    """stdin/stdout as one byte stream. A read blocked in its worker thread is
    abandoned on cancel, so a signal can stop a daemon whose stdin stays open."""

    def __init__(self, stdin_fd: int, stdout_fd: int) -> None:
        self._in = stdin_fd
        self._out = stdout_fd

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await anyio.to_thread.run_sync(os.read, self._in, max_bytes, abandon_on_cancel=True)
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            written = await anyio.to_thread.run_sync(os.write, self._out, view)
            view = view[written:]

    async def send_eof(self) -> None:
        os.close(self._out)

    async def aclose(self) -> None:
        pass  # the process owns its standard streams


async def serve_stdio(daemon: Daemon) -> None:
    """Frames on stdin, replies on stdout (for a process supervisor, and tests)."""
    stream = StdioStream(sys.stdin.fileno(), sys.stdout.fileno())
    caller = Caller(principal=own_principal(), peer=f"stdio uid={os.getuid()}")
    await serve_stream(stream, daemon, caller)
