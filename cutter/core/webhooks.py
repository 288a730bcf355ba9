"""Webhooks (pure): where notices go, as the policy names them, and how a body is signed.

A policy lists ``webhooks = [{url = "https://…", secret_file = "/…", events = [...]}]``.
The policy is what the daemon's writer identity cannot change (the control role's on
PostgreSQL, docs/gates.md), so a compromised writer cannot redirect notifications.
Each POST carries ``X-Cutter-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact
body bytes under the endpoint's secret (read from ``secret_file`` when sending, never
stored in the policy), which a receiver checks with ``verify`` or its own HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

import msgspec

from cutter.core.errors import PolicyInvalid
from cutter.core.notice_events import EVENTS, NoticeEvent

MAX_WEBHOOKS = 20
MAX_URL = 2048
MAX_PATH = 4096
SIGNATURE_PREFIX = "sha256="
HEADER_EVENT = "X-Cutter-Event"
HEADER_DELIVERY = "X-Cutter-Delivery"
HEADER_SIGNATURE = "X-Cutter-Signature"


class Webhook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    secret_file: str
    events: tuple[NoticeEvent, ...] = EVENTS
    timeout_seconds: int = 10
    max_attempts: int = 8

    def wants(self, event: str) -> bool:
        return event in self.events


def check_webhooks(webhooks: tuple[Webhook, ...]) -> None:
    """``PolicyInvalid`` unless every webhook is one a daemon can POST to."""
    if len(webhooks) > MAX_WEBHOOKS:
        raise PolicyInvalid(f"more than {MAX_WEBHOOKS} webhooks")
    seen: set[str] = set()
    for index, hook in enumerate(webhooks):
        where = f"webhooks[{index}]"
        _check_url(where, hook.url)
        if hook.url in seen:
            raise PolicyInvalid(f"{where}.url is listed twice")
        seen.add(hook.url)
        path = hook.secret_file
        if not path.startswith("/") or len(path) > MAX_PATH or "\x00" in path:
            raise PolicyInvalid(f"{where}.secret_file must be an absolute path")
        if not hook.events:
            raise PolicyInvalid(f"{where}.events is empty: it would be sent nothing")
        if not 1 <= hook.timeout_seconds <= 120:
            raise PolicyInvalid(f"{where}.timeout_seconds must be 1..120")
        if not 1 <= hook.max_attempts <= 50:
            raise PolicyInvalid(f"{where}.max_attempts must be 1..50")


def _check_url(where: str, url: str) -> None:
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise PolicyInvalid(f"{where}.url is not a plain URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise PolicyInvalid(f"{where}.url {url[:60]!r} is not a URL") from None
    del port  # parsed only to refuse a bad one
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PolicyInvalid(f"{where}.url must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise PolicyInvalid(f"{where}.url must carry no credentials: the secret signs the body")
    if parts.fragment:
        raise PolicyInvalid(f"{where}.url must have no #fragment")


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Cutter-Signature`` value of ``body`` under ``secret``."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return hmac.compare_digest(sign(secret, body).encode(), header.encode())
