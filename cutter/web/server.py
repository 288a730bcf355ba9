"""The review page served by hypercorn inside the daemon's task group.

The socket is bound by ``cutter.web.address`` before the daemon opens anything and
handed to hypercorn by file descriptor; hypercorn stops gracefully when the daemon's
``stop_requested`` is set (its ``shutdown_trigger``), before the runs drain."""

from __future__ import annotations

import socket

import anyio
from anyio.abc import TaskStatus
from hypercorn.asyncio import serve
from hypercorn.config import Config

from cutter.daemon.service import Daemon
from cutter.web.address import url_of
from cutter.web.app import review_app

GRACEFUL_SECONDS = 3.0
BACKLOG = 64


async def serve_http(
    sock: socket.socket,
    daemon: Daemon,
    *,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the review page on ``sock`` (bound, not listening) until the daemon stops."""
    url = url_of(sock)
    daemon.web_url = url
    sock.listen(BACKLOG)  # connections queue from now on, while hypercorn starts
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket now
    config.accesslog = None  # paths carry link tokens: they are never logged
    config.errorlog = None  # the app logs its own failures (web_failed)
    config.include_server_header = False
    config.graceful_timeout = GRACEFUL_SECONDS
    config.h11_max_incomplete_size = 16 * 1024
    app = review_app(daemon)
    daemon.log.info("http_serving", url=url)
    task_status.started(url)
    # Starlette's ASGI types and hypercorn's are the same protocol, spelt apart.
    await serve(app, config, shutdown_trigger=daemon.stop_requested.wait, mode="asgi")  # type: ignore[arg-type]
