"""One-time review links (``cutter review RUN --web``), kept in the daemon's memory.

A link is a random token (256 bits, URL-safe base64) in the page's path,
``/runs/<run_id>/link/<token>``. The daemon keeps only the token's sha-256, with
what the link is bound to: the principal that minted it over the socket (so the
page decides as someone the kernel authenticated), the run, and the request it
answers (gate, request digest, nonce). It decides once, before it expires; a
daemon restart forgets every link (they were never written down).

The decision form carries a CSRF token: an HMAC of the link's hash under a key
the daemon draws at start, so only a page served for that link can post to it.
No cookie is set: the token travels in the form, and the link itself is the
credential.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cutter.core.route import Gate
from cutter.web.errors import CsrfInvalid, LinkExpired, LinkInvalid, LinkUsed, LinkWrongRun

TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters, no padding
_CSRF = re.compile(r"[0-9a-f]{64}")
DEFAULT_TTL = timedelta(minutes=15)
MAX_LINKS = 10_000  # live links kept; expired ones are forgotten first


@dataclass(frozen=True, slots=True)
class Link:
    principal: str
    run_id: str
    gate: Gate
    request_digest: str
    nonce: str
    expires_at: datetime
    used: bool = False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass
class LinkBook:
    ttl: timedelta = DEFAULT_TTL
    _links: dict[str, Link] = field(default_factory=dict)  # token hash -> link
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def mint(
        self,
        *,
        principal: str,
        run_id: str,
        gate: Gate,
        request_digest: str,
        nonce: str,
        now: datetime,
        ttl: timedelta | None = None,
    ) -> tuple[str, Link]:
        """A new token and its link; ``ttl`` may only shorten the book's."""
        lifetime = self.ttl if ttl is None else min(ttl, self.ttl)
        self._forget_expired(now)
        if len(self._links) >= MAX_LINKS:
            oldest = min(self._links, key=lambda h: self._links[h].expires_at)
            del self._links[oldest]
        token = secrets.token_urlsafe(TOKEN_BYTES)
        link = Link(
            principal=principal,
            run_id=run_id,
            gate=gate,
            request_digest=request_digest,
            nonce=nonce,
            expires_at=now + lifetime,
        )
        self._links[token_hash(token)] = link
        return token, link

    def find(self, token: str, run_id: str, now: datetime) -> Link:
        """The live link ``token`` names for ``run_id``, or why not."""
        if not _TOKEN.fullmatch(token):
            raise LinkInvalid("this link is not one the daemon minted (malformed or truncated)")
        link = self._links.get(token_hash(token))
        if link is None:
            raise LinkInvalid(
                "this link is not one the daemon minted, or the daemon restarted since "
                "(links are kept in its memory): mint another with cutter review RUN --web"
            )
        if link.run_id != run_id:
            raise LinkWrongRun(f"this link was minted for run {link.run_id}, not {run_id}")
        if link.used:
            raise LinkUsed("this link was used already: a link decides once")
        if now >= link.expires_at:
            raise LinkExpired(f"this link expired at {link.expires_at.isoformat()}")
        return link

    def spend(self, token: str, run_id: str, now: datetime) -> Link:
        """Mark the live link used (no await in between: a second post finds it used)."""
        link = self.find(token, run_id, now)
        self._links[token_hash(token)] = replace(link, used=True)
        return link

    def csrf(self, token: str) -> str:
        """The form token of the page served for ``token``."""
        return hmac.new(self._key, token_hash(token).encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, token: str, given: str | None) -> None:
        if given is None or not _CSRF.fullmatch(given):
            raise CsrfInvalid("the decision carries no form token from this link's page")
        if not hmac.compare_digest(self.csrf(token), given):
            raise CsrfInvalid("the decision's form token is not this link's")

    def _forget_expired(self, now: datetime) -> None:
        for key in [h for h, link in self._links.items() if now >= link.expires_at]:
            del self._links[key]
