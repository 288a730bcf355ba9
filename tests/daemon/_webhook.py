"""A webhook receiver for the daemon tests: a ``ThreadingHTTPServer`` on loopback that
records every POST (headers lower-cased, raw body) and answers 200."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WAIT_S = 60.0  # a deadline for deliveries to arrive, never a measurement


@dataclass
class Received:
    """What the endpoint was sent, in order."""

    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, headers: dict[str, str], body: bytes) -> None:
        with self.changed:
            self.posts.append((headers, body))
            self.changed.notify_all()

    def deduped(self) -> dict[str, tuple[dict[str, str], bytes]]:
        """The receiver's view, deduplicated on X-Cutter-Delivery (first one kept)."""
        seen: dict[str, tuple[dict[str, str], bytes]] = {}
        with self.changed:
            for headers, body in self.posts:
                seen.setdefault(headers["x-cutter-delivery"], (headers, body))
        return seen

    def wait_for(self, distinct: int) -> None:
        """Until ``distinct`` different deliveries arrived (asserted within WAIT_S)."""
        with self.changed:
            ok = self.changed.wait_for(
                lambda: len({h["x-cutter-delivery"] for h, _ in self.posts}) >= distinct,
                timeout=WAIT_S,
            )
        assert ok, f"only {len(self.deduped())} of {distinct} notices arrived"

    def wait_for_event(self, event: str) -> bool:
        """Whether a POST of ``event`` arrived within WAIT_S."""
        with self.changed:
            return self.changed.wait_for(
                lambda: any(h["x-cutter-event"] == event for h, _ in self.posts),
                timeout=WAIT_S,
            )

    def events(self) -> list[str]:
        with self.changed:
            return [h["x-cutter-event"] for h, _ in self.posts]


@contextmanager
def webhook_endpoint() -> Iterator[tuple[str, Received]]:
    """The endpoint's URL and what it receives, while inside."""
    received = Received()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.add({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
