"""Reading newline-delimited frames off one connection, within the limits
(``cutter.daemon.limits``): the frame size, the idle and frame deadlines, and the
buffer budget shared by every connection.

The bytes of an unfinished frame are the connection's share of the budget. A read
into an empty buffer takes at most ``FIRST_READ`` bytes and counts them once they
arrived (so a connection that sends nothing holds nothing, and the budget can be
passed by at most ``FIRST_READ`` per connection); every later read of the frame
reserves its room in the budget first, so the bytes the daemon holds for unfinished
frames stay under ``buffer_budget + max_connections * FIRST_READ``.
"""

from __future__ import annotations

import anyio
from anyio.abc import ByteReceiveStream

from cutter.core.errors import ErrorCode
from cutter.core.protocol import MAX_FRAME_BYTES, Error
from cutter.daemon.limits import BufferBudget, ConnectionLimits

FIRST_READ = 4096
CHUNK = 65536
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


class FrameRefused(Exception):
    """The connection ends: ``reply`` is its last frame, ``event`` the log line."""

    def __init__(self, code: ErrorCode, message: str, event: str) -> None:
        super().__init__(code)
        self.reply = Error(code=code, message=message)
        self.event = event


def _too_large() -> FrameRefused:
    return FrameRefused(
        ErrorCode.FRAME_TOO_LARGE, f"a frame is {MAX_FRAME_BYTES} bytes at most", "frame_refused"
    )


class FrameReader:
    """The frames of one connection, in order; ``None`` once it has closed."""

    def __init__(
        self, stream: ByteReceiveStream, limits: ConnectionLimits, budget: BufferBudget
    ) -> None:
        self._stream = stream
        self._limits = limits
        self._budget = budget
        self._buffer = bytearray()  # every byte of it is taken from the budget
        self._scanned = 0  # no newline before this offset
        self._frame_deadline: float | None = None

    async def next_frame(self) -> bytes | None:
        """The next frame (without its newline); ``FrameRefused`` when a limit ends
        the connection."""
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline > MAX_FRAME_BYTES:
                raise _too_large()
            if newline >= 0:
                frame = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._budget.give_back(newline + 1)
                self._scanned = 0
                self._frame_deadline = None
                return frame
            self._scanned = len(self._buffer)
            if len(self._buffer) > MAX_FRAME_BYTES:
                raise _too_large()
            if not await self._receive():
                return None

    async def _receive(self) -> bool:
        """Read more of the stream into the buffer; False at its end."""
        if not self._buffer:
            room, reserved = FIRST_READ, 0
            seconds = self._limits.idle_seconds
            deadline = anyio.current_time() + seconds if seconds is not None else None
            timeout = FrameRefused(
                ErrorCode.IDLE_TIMEOUT, f"no frame for {seconds} s", "connection_idle_closed"
            )
        else:
            room = min(CHUNK, MAX_FRAME_BYTES + 1 - len(self._buffer), self._budget.available)
            if room <= 0:
                raise FrameRefused(
                    ErrorCode.BUFFER_BUDGET_EXCEEDED,
                    "the daemon holds as many unfinished frames as it may; try again",
                    "frame_refused",
                )
            reserved = room
            self._budget.take(reserved)
            seconds = self._limits.frame_seconds
            if self._frame_deadline is None and seconds is not None:
                self._frame_deadline = anyio.current_time() + seconds
            deadline = self._frame_deadline
            timeout = FrameRefused(
                ErrorCode.FRAME_TIMEOUT,
                f"a frame must be complete within {seconds} s",
                "frame_timed_out",
            )
        chunk = b""
        try:
            with anyio.CancelScope(deadline=deadline if deadline is not None else float("inf")):
                chunk = await self._stream.receive(room)
        except _GONE:
            return False
        finally:
            self._budget.give_back(reserved)
        if not chunk:  # the deadline passed
            raise timeout
        self._budget.take(len(chunk))
        self._buffer += chunk
        return True

    async def discard_until_closed(self) -> None:
        """Read and drop whatever comes until the stream ends (a watch's connection:
        frames sent on it are ignored), holding none of the budget."""
        self.release()
        try:
            while await self._stream.receive(CHUNK):
                pass
        except _GONE:
            pass

    def release(self) -> None:
        """Give the budget back what this connection holds (it is done reading frames)."""
        self._budget.give_back(len(self._buffer))
        self._buffer.clear()
        self._scanned = 0

    async def __aenter__(self) -> FrameReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()
