"""What one client, or many, may hold of the daemon: connections, time, buffered bytes.

- ``max_connections``: connections served at once. One more is answered
  ``E_TOO_MANY_CONNECTIONS`` and closed; the daemon goes on serving the others.
  At start the limit is fitted to the process's open-file limit
  (``fit_to_open_files``), so accepting never runs the daemon out of descriptors.
- ``idle_seconds``: a connection waiting for its next frame that receives no byte
  for this long is answered ``E_IDLE_TIMEOUT`` and closed. A connection is never
  idle while the daemon is answering one of its commands, and a ``watch`` stream is
  never idle: the watcher's part is to take its events (a send stalled for
  ``WATCH_SEND_TIMEOUT`` drops it) and keep its end open.
- ``frame_seconds``: a frame must be complete (its newline received) within this
  long of the first byte of it the daemon reads, or ``E_FRAME_TIMEOUT`` and close.
- ``buffer_budget``: bytes of unfinished frames held across every connection. A
  frame that needs more than is left is refused ``E_BUFFER_BUDGET_EXCEEDED`` and its
  connection closed (the rest of the stream cannot be trusted to start a frame).

The stdio transport is one connection from whoever supervises the daemon: it gets
no idle or frame deadline (end of stdin stops the daemon).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, replace

from cutter.core.protocol import MAX_FRAME_BYTES

MIB = 1 << 20
DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_IDLE_SECONDS = 300.0
DEFAULT_FRAME_SECONDS = 30.0
DEFAULT_BUFFER_BUDGET = 64 * MIB
MIN_BUFFER_BUDGET = 2 * MAX_FRAME_BYTES  # one frame of the largest size always fits
# Descriptors kept for everything but client connections: the stores' files, the
# log, the listener, the review page, a PostgreSQL pool.
RESERVED_FILES = 64


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_seconds: float | None = DEFAULT_IDLE_SECONDS  # None: no idle deadline (stdio)
    frame_seconds: float | None = DEFAULT_FRAME_SECONDS  # None: no frame deadline (stdio)
    buffer_budget: int = DEFAULT_BUFFER_BUDGET


STDIO_LIMITS = ConnectionLimits(max_connections=1, idle_seconds=None, frame_seconds=None)


def fit_to_open_files(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` whose ``max_connections`` the open-file limit can hold beside
    ``RESERVED_FILES``: the soft limit is raised towards the hard one if it must be,
    and the connection limit lowered if that is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserved = RESERVED_FILES if soft >= 2 * RESERVED_FILES else soft // 2
    needed = limits.max_connections + reserved
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (OSError, ValueError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits
    return replace(limits, max_connections=max(1, soft - reserved))


class BufferBudget:
    """Bytes of unfinished frames held across connections, at most ``total``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0

    @property
    def available(self) -> int:
        return self.total - self.held

    def take(self, count: int) -> None:
        self.held += count

    def give_back(self, count: int) -> None:
        self.held -= count


class Connections:
    """How many connections are being served, against ``limits.max_connections``."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.budget = BufferBudget(limits.buffer_budget)

    @property
    def full(self) -> bool:
        return self.open >= self.limits.max_connections
