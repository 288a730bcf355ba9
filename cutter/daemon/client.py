"""A client of the daemon's socket: one request, one reply; or a stream of events.

async with Client(socket_path) as client:
    reply = await client.request(StatusOf(run_id="run-…"))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import NoReturn, TypeVar

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cutter.core.errors import CutterError, ErrorCode, error_for
from cutter.core.protocol import (
    MAX_FRAME_BYTES,
    AnyCommand,
    AnyReply,
    Error,
    Event,
    Reply,
    Watch,
    decode_reply,
    encode,
)
from cutter.core.wire_errors import BadReply

R = TypeVar("R", bound=Reply)


class DaemonUnavailable(CutterError):
    code = ErrorCode.DAEMON_UNAVAILABLE


class ReplyTooLarge(CutterError):
    """A reply longer than this client reads in one frame: refused, typed, and the
    connection closed (what follows cannot be trusted to start a frame)."""

    code = ErrorCode.REPLY_TOO_LARGE


def raised(reply: Error) -> CutterError:
    """The error an ``error`` frame says: the class registered for its code, as the
    daemon raised it (``cutter.core.errors.error_for``), with its message and error id."""
    import cutter.daemon.error_classes  # noqa: F401  (registers every class; only on an error)

    return error_for(reply.code, reply.message, error_id=reply.error_id)


def expect(reply: AnyReply, kind: type[R]) -> R:
    """The reply if it is a ``kind``; an ``error`` frame raises its registered class;
    any other reply raises ``BadReply``."""
    if isinstance(reply, kind):
        return reply
    if isinstance(reply, Error):
        raise raised(reply)
    raise BadReply(f"expected a {kind.__name__} reply, got {type(reply).__name__}")


class Client:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._stream: SocketStream | None = None
        self._buffered: BufferedByteReceiveStream | None = None

    async def __aenter__(self) -> Client:
        try:
            self._stream = await anyio.connect_unix(self.socket_path)
        except OSError as exc:
            raise DaemonUnavailable(f"no daemon answers on {self.socket_path}: {exc}") from exc
        self._buffered = BufferedByteReceiveStream(self._stream)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    async def request(self, command: AnyCommand) -> AnyReply:
        await self._send(command)
        return await self._receive()

    async def watch(self, command: Watch) -> AsyncIterator[Event | Error]:
        await self._send(command)
        while True:
            reply = await self._receive()
            if not isinstance(reply, Event | Error):
                raise DaemonUnavailable(f"unexpected {type(reply).__name__} in a watch")
            yield reply
            if isinstance(reply, Error):
                return

    async def _send(self, command: AnyCommand) -> None:
        assert self._stream is not None, "use 'async with Client(...)'"
        try:
            await self._stream.send(encode(command))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise DaemonUnavailable(f"the daemon closed the connection: {exc}") from exc

    async def _receive(self) -> AnyReply:
        assert self._buffered is not None
        try:
            line = await self._buffered.receive_until(b"\n", MAX_FRAME_BYTES)
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            raise DaemonUnavailable("the daemon closed the connection") from exc
        except anyio.DelimiterNotFound:
            await self._too_large()
        if len(line) > MAX_FRAME_BYTES:  # the newline came in the same read as the excess
            await self._too_large()
        return decode_reply(line)

    async def _too_large(self) -> NoReturn:
        if self._stream is not None:
            await self._stream.aclose()
        raise ReplyTooLarge(
            f"the daemon's reply is longer than {MAX_FRAME_BYTES} bytes, more than this "
            "client reads in one frame; ask for less (a smaller --limit)"
        )
