"""``--http HOST:PORT``: parsed, checked to be loopback, and bound before the daemon
opens anything, so a refusal is one line and an exit code, never a traceback.

Tokens travel without TLS, so the page listens on a loopback address only
(``127.0.0.0/8``, ``::1``, or ``localhost`` for ``127.0.0.1``). Port 0 lets the
kernel pick a free port; the daemon logs the one it bound (``http_serving``)."""

from __future__ import annotations

import errno
import ipaddress
import socket

from cutter.web.errors import HttpAddressRefused, HttpPortBusy


def parse_address(text: str) -> tuple[str, int]:
    """``127.0.0.1:8080``, ``[::1]:0``, ``localhost:8080`` → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise HttpAddressRefused(f"--http {text[:60]!r} is not HOST:PORT (PORT 0..65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise HttpAddressRefused(
            f"--http {text[:60]!r}: HOST must be a loopback IP address (or localhost)"
        ) from None
    if not address.is_loopback:
        raise HttpAddressRefused(
            f"--http {text[:60]!r} is not a loopback address: review links carry tokens "
            "without TLS, so the page listens on 127.0.0.1 or ::1 only"
        )
    return str(address), int(port_text)


def bind(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket; ``HttpPortBusy`` when the port is not ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or "refused")
        raise HttpPortBusy(f"--http {host}:{port} cannot be bound: {why}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
