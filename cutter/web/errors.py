"""The review page's refusals: each a typed error with a code and the HTTP status
its refusal page is served with. Nothing is changed by a refused request."""

from __future__ import annotations

from typing import ClassVar

from cutter.core.errors import AccessDenied, CutterError, ErrorCode, InputError, Refusal, UnknownRun


class WebRefusal(CutterError):
    """A request to the review page that is refused; the page says why."""

    code = ErrorCode.WEB_REFUSED
    status: ClassVar[int] = 400


class LinkInvalid(WebRefusal):
    """A link token this daemon never minted (forged, truncated, or minted by a
    daemon that has restarted since: links live in its memory)."""

    code = ErrorCode.LINK_INVALID
    status = 404


class LinkExpired(WebRefusal):
    code = ErrorCode.LINK_EXPIRED
    status = 410


class LinkUsed(WebRefusal):
    """A link decides once: it was spent by an earlier decision."""

    code = ErrorCode.LINK_USED
    status = 410


class LinkWrongRun(WebRefusal):
    """A link minted for one run, used on another's page."""

    code = ErrorCode.LINK_WRONG_RUN
    status = 403


class LinkStale(WebRefusal):
    """The request the link was minted for is no longer the one the run waits on
    (the gate moved on, the run stopped): a link is never re-aimed."""

    code = ErrorCode.LINK_STALE
    status = 409


class CsrfInvalid(WebRefusal):
    """A decision posted without the form's token for this link, or with another."""

    code = ErrorCode.CSRF_INVALID
    status = 403


class FormTooLarge(WebRefusal):
    code = ErrorCode.FORM_TOO_LARGE
    status = 413


class FormInvalid(WebRefusal):
    code = ErrorCode.FORM_INVALID
    status = 400


class NotFound(WebRefusal):
    code = ErrorCode.NOT_FOUND
    status = 404


class HttpAddressRefused(InputError):
    """``--http`` names no loopback address and port: tokens travel without TLS, so
    the page listens on loopback only."""

    code = ErrorCode.HTTP_ADDRESS_REFUSED


class HttpPortBusy(CutterError):
    """The ``--http`` port cannot be bound (in use, or not ours to use)."""

    code = ErrorCode.HTTP_PORT_BUSY


class HttpNotServing(InputError):
    """A link was asked of a daemon started without ``--http``."""

    code = ErrorCode.HTTP_NOT_SERVING


class WebProofNotAccepted(AccessDenied):
    """The policy does not take the review page as proof for this gate (its
    ``proofs`` do not list ``"web"``): no link is minted."""

    code = ErrorCode.WEB_PROOF_NOT_ACCEPTED


def status_of(exc: CutterError) -> int:
    """The HTTP status a refusal page is served with."""
    if isinstance(exc, WebRefusal):
        return exc.status
    if isinstance(exc, UnknownRun):
        return 404
    if isinstance(exc, AccessDenied):
        return 403
    if isinstance(exc, Refusal):
        return 409
    return 400
