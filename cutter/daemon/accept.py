"""Accepting connections within ``max_connections``, and through a shortage of
descriptors.

A connection over the limit is answered ``E_TOO_MANY_CONNECTIONS`` and closed at
once: it never holds a task. When ``accept`` itself fails for want of descriptors
or memory (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``) the daemon logs
``accept_failed``, waits ``ACCEPT_BACKOFF`` seconds for connections to close (the
pending one stays in the listen queue) and accepts again, as trio's and anyio's
servers do; any other failure of the listener ends the daemon as before.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
from anyio.abc import ByteStream

from cutter.core.errors import ErrorCode
from cutter.core.protocol import Error, encode
from cutter.daemon.limits import Connections
from cutter.runtime.logs import Logger

ACCEPT_BACKOFF = 0.1  # seconds; a back-off, not a synchronisation
REFUSE_SECONDS = 1.0  # a fresh connection's send buffer is empty: this is a safety net
_NO_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Accepting(Protocol):
    """A listener (``anyio.abc.SocketListener``, or a test's)."""

    async def accept(self) -> ByteStream: ...


def too_many(limit: int) -> Error:
    return Error(
        code=ErrorCode.TOO_MANY_CONNECTIONS,
        message=f"the daemon serves {limit} connections at most; close one and try again",
    )


def out_of_resources(exc: BaseException) -> OSError | None:
    """The OSError behind a failed accept when it is a shortage, else None."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.errno in _NO_RESOURCES:
        return cause
    return None


async def accept_loop(
    listener: Accepting,
    connections: Connections,
    handle: Callable[[ByteStream], Awaitable[None]],
    log: Logger,
    *,
    backoff: float = ACCEPT_BACKOFF,
) -> None:
    """Accept until cancelled; each connection within the limit runs ``handle``."""

    async def served(stream: ByteStream) -> None:
        try:
            await handle(stream)
        finally:
            connections.open -= 1

    async with anyio.create_task_group() as tg:
        while True:
            try:
                stream = await listener.accept()
            except (anyio.BrokenResourceError, OSError) as exc:
                shortage = out_of_resources(exc)
                if shortage is None:
                    raise
                log.warning(
                    "accept_failed",
                    errno=errno.errorcode.get(shortage.errno or 0, str(shortage.errno)),
                    open_connections=connections.open,
                    backoff_seconds=backoff,
                )
                await anyio.sleep(backoff)
                continue
            if connections.full:
                await refuse(stream, connections.limits.max_connections)
                log.info(
                    "connection_refused", code=ErrorCode.TOO_MANY_CONNECTIONS, open=connections.open
                )
                continue
            connections.open += 1
            tg.start_soon(served, stream)


async def refuse(stream: ByteStream, limit: int) -> None:
    """Tell the client why, close."""
    with anyio.move_on_after(REFUSE_SECONDS):
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await stream.send(encode(too_many(limit)))
    await anyio.aclose_forcefully(stream)
