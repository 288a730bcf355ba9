"""The review page, a Starlette app over the daemon's own objects.

- ``GET /``: the inbox of runs waiting at a gate.
- ``GET /runs/<run_id>``: what the open gate authorises (the ``cutter review``
  value, ``cutter.walk.gate_review``) and the source text with each unit's byte range
  marked. Read-only: whoever reaches the loopback port may read it.
- ``GET /runs/<run_id>/link/<token>``: the same page with approve and reject forms,
  for a link minted by ``cutter review RUN --web`` (``cutter.web.links``).
- ``POST /runs/<run_id>/link/<token>``: the decision, recorded through the daemon's
  own approval path (``Daemon.web_decide``) as the principal the link was minted for.

Every refusal is a page with a code and an HTTP status (``cutter.web.errors``);
nothing is changed by it and the daemon keeps serving.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from importlib import resources
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import FormParser
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from cutter.core.errors import CorruptRecord, CutterError, InvalidIdentifier, new_error_id
from cutter.core.ids import check_run_id, check_text, check_token
from cutter.core.kbdocs import Decision
from cutter.core.principals import Caller
from cutter.core.protocol import SubmitApproval
from cutter.core.route import Gate
from cutter.daemon.service import Daemon
from cutter.web.errors import (
    FormInvalid,
    FormTooLarge,
    LinkStale,
    NotFound,
    status_of,
)
from cutter.web.inbox import inbox
from cutter.web.links import Link, token_hash
from cutter.web.pages import MAX_SOURCE_BYTES, duration, inbox_row, segments

_CSS = (resources.files("cutter.web") / "static" / "review.css").read_text(encoding="utf-8")
MAX_FORM_BYTES = 8 * 1024  # a decision is a few short fields
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
HEADERS = {
    # No script runs on these pages, no other origin frames or receives them.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the link's token never leaves in a Referer
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cutter.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["duration"] = duration
    env.filters["when"] = lambda at: at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return env


def review_app(daemon: Daemon) -> Starlette:
    """The review page of ``daemon`` (its runner, policy, links and clock)."""
    pages = Pages(daemon, Jinja2Templates(env=_environment()))
    return Starlette(
        routes=[
            Route("/", pages.inbox),
            Route("/runs/{run_id}", pages.review),
            Route("/runs/{run_id}/link/{token}", pages.link, methods=["GET"]),
            Route("/runs/{run_id}/link/{token}", pages.decide, methods=["POST"]),
            Route("/static/review.css", pages.css),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS))],
        exception_handlers={HTTPException: pages.http_error, Exception: pages.crash},
    )


class Pages:
    def __init__(self, daemon: Daemon, templates: Jinja2Templates) -> None:
        self.daemon = daemon
        self.templates = templates
        self.log = daemon.log.bind(component="web")

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        return self.templates.TemplateResponse(
            request, name, context, status_code=status, headers=HEADERS
        )

    def refused(self, request: Request, exc: CutterError) -> Response:
        status = status_of(exc)
        self.log.info("web_refused", path=_logged_path(request), code=exc.code, status=status)
        context = {"code": exc.code, "message": exc.message, "status": status}
        return self.page(request, "refused.html", context, status)

    # -- read-only pages -------------------------------------------------------------
    async def inbox(self, request: Request) -> Response:
        try:
            return await self._inbox(request)
        except CutterError as exc:  # an unreadable policy or run: said, not a 500
            return self.refused(request, exc)

    async def _inbox(self, request: Request) -> Response:
        policy = (await self.daemon.policy()).policy
        waiting = await inbox(self.daemon.runner.config.run_store, policy)
        context = {
            "rows": waiting.rows,
            "waiting": waiting.waiting,
            "unreadable": waiting.unreadable,
        }
        return self.page(request, "inbox.html", context)

    async def review(self, request: Request) -> Response:
        try:
            return await self._review_page(request, link=None, token=None)
        except CutterError as exc:
            return self.refused(request, exc)

    async def _review_page(
        self, request: Request, *, link: Link | None, token: str | None
    ) -> Response:
        run_id = _run_id(request)
        sidecar, review = await self.daemon.runner.review(run_id)
        data = await self._source(review.source_version_id)
        shown = data is not None and len(data) <= MAX_SOURCE_BYTES
        policy = (await self.daemon.policy()).policy
        gate = sidecar.pending_gate
        assert gate is not None  # review() refuses a run at no gate
        context = {
            "run": sidecar,
            "review": review,
            "row": inbox_row(sidecar, policy.gate_rule(sidecar.doc_id, gate.gate)),
            "segments": segments(data, review.units) if shown and data is not None else (),
            "source_note": None if shown else "the source text is too large to show here",
            "link": link,
            "action": None if token is None else f"/runs/{run_id}/link/{token}",
            "csrf": None if token is None else self.daemon.links.csrf(token),
        }
        return self.page(request, "review.html", context)

    async def _source(self, sv_id: str) -> bytes | None:
        sources = self.daemon.runner.config.target.sources
        try:
            return await sources.content(sv_id)
        except CorruptRecord:
            return await sources.stored_bytes(sv_id)
        except KeyError:
            return None

    # -- deciding through a link -------------------------------------------------------
    async def link(self, request: Request) -> Response:
        try:
            token = request.path_params["token"]
            link = self._live_link(request, token)
            await self._still_open(link)
            return await self._review_page(request, link=link, token=token)
        except CutterError as exc:
            return self.refused(request, exc)

    async def decide(self, request: Request) -> Response:
        try:
            token = request.path_params["token"]
            # An unknown link is refused before its body is read; a bad form spends nothing.
            found = self._live_link(request, token)
            form = await _small_form(request)
            self.daemon.links.check_csrf(token, _field(form, "csrf"))
            decision, reason, review_decision_id = _decision(form)
            if found.gate is Gate.SG_2 and review_decision_id is None:
                raise FormInvalid("an SG_2 decision needs the review decision id it rests on")
            now = self.daemon.runner.config.clock()
            link = self.daemon.links.spend(token, _run_id(request), now)
            await self._still_open(link)
            command = SubmitApproval(
                run_id=link.run_id,
                gate=link.gate,
                request_digest=link.request_digest,
                nonce=link.nonce,
                decision=decision,
                approver=link.principal,
                reason=reason,
                review_decision_id=review_decision_id,
            )
            client = request.client.host if request.client else "?"
            caller = Caller(
                principal=link.principal, peer=f"web link {token_hash(token)[:12]} from {client}"
            )
            stored = await self.daemon.web_decide(command, caller)
        except CutterError as exc:
            return self.refused(request, exc)
        self.log.info(
            "web_decision",
            run_id=link.run_id,
            principal=link.principal,
            decision=decision.value,
            approval_kb_id=stored.approval_kb_id,
            state=stored.run.state.value,
        )
        done = "approved" if decision is Decision.APPROVE else "rejected"
        context = {"stored": stored, "decision": done, "link": link}
        return self.page(request, "decided.html", context)

    def _live_link(self, request: Request, token: str) -> Link:
        return self.daemon.links.find(token, _run_id(request), self.daemon.runner.config.clock())

    async def _still_open(self, link: Link) -> None:
        """The link's request is the one the run waits on now, or it is refused."""
        gate = (await self.daemon.runner.status(link.run_id)).pending_gate
        if (
            gate is None
            or gate.gate is not link.gate
            or gate.request_digest != link.request_digest
            or gate.nonce != link.nonce
        ):
            now = "waits at no gate" if gate is None else f"waits at {gate.gate.value}"
            raise LinkStale(
                f"this link answers the {link.gate.value} request {link.request_digest[:16]}…, "
                f"and run {link.run_id} {now} on another: mint a new link to decide it"
            )

    # -- the rest ---------------------------------------------------------------------
    async def css(self, request: Request) -> Response:
        return Response(_CSS, media_type="text/css", headers=HEADERS)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return self.refused(request, NotFound(f"no page at {request.url.path[:80]}"))
        error = FormInvalid(f"{request.method} {request.url.path[:80]}: {exc.detail}")
        context = {"code": error.code, "message": error.message, "status": exc.status_code}
        return self.page(request, "refused.html", context, exc.status_code)

    async def crash(self, request: Request, exc: Exception) -> Response:
        error_id = new_error_id()
        self.log.error("web_failed", path=_logged_path(request), error_id=error_id, exc_info=exc)
        context = {"code": "E_INTERNAL", "message": f"internal error {error_id}", "status": 500}
        return self.page(request, "refused.html", context, 500)


def _logged_path(request: Request) -> str:
    """The request's path with a link's token cut out: tokens are never logged."""
    path = request.url.path
    head, sep, _ = path.partition("/link/")
    return f"{head}/link/…" if sep else path[:200]


def _run_id(request: Request) -> str:
    try:
        return check_run_id(request.path_params["run_id"])
    except InvalidIdentifier as exc:
        raise NotFound(exc.message) from None


async def _small_form(request: Request) -> FormData:
    """The posted form, read up to ``MAX_FORM_BYTES``; a larger body is refused
    whatever its Content-Length says."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise FormInvalid("a decision is posted as application/x-www-form-urlencoded")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge(f"a decision is {MAX_FORM_BYTES} bytes at most")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge(f"a decision is {MAX_FORM_BYTES} bytes at most")

    async def once() -> AsyncGenerator[bytes, None]:
        yield bytes(body)

    return await FormParser(Headers(scope=request.scope), once(), max_fields=10).parse()


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _decision(form: FormData) -> tuple[Decision, str, str | None]:
    try:
        decision = Decision(_field(form, "decision") or "")
    except ValueError:
        raise FormInvalid("decision must be approve or reject") from None
    try:
        reason = check_text("reason", _field(form, "reason") or "", 2000).strip()
        rdi = (_field(form, "review_decision_id") or "").strip()
        review_decision_id = check_token("review_decision_id", rdi) if rdi else None
    except InvalidIdentifier as exc:
        raise FormInvalid(exc.message) from None
    done = "approved" if decision is Decision.APPROVE else "rejected"
    return decision, reason or f"{done} on the review page", review_decision_id
