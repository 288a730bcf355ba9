"""The codes only the protocol and the client say, each with its class.

The daemon answers these as ``error`` frames without raising them (a frame it cannot
decode, a bug, a connection over a limit); the client says the last four on its own
(docs/protocol.md, "Error codes"). Each is here so that every ``ErrorCode`` has one
class and a client rebuilds any ``error`` frame as a typed error (``error_for``).
"""

from __future__ import annotations

from cutter.core.errors import CutterError, ErrorCode


class WireError(CutterError):
    """An ``error`` frame the protocol itself (not a command) answered. (No code of
    its own: each subclass has one.)"""


class FrameInvalid(WireError):
    """Not JSON, an unknown ``cmd``, a missing, mistyped or unknown field."""

    code = ErrorCode.BAD_FRAME


class ProtocolVersionUnsupported(WireError):
    code = ErrorCode.PROTOCOL_VERSION


class FrameTooLarge(WireError):
    code = ErrorCode.FRAME_TOO_LARGE


class WatchLagged(WireError):
    code = ErrorCode.WATCH_LAGGED


class TooManyConnections(WireError):
    code = ErrorCode.TOO_MANY_CONNECTIONS


class IdleTimeout(WireError):
    code = ErrorCode.IDLE_TIMEOUT


class FrameTimeout(WireError):
    code = ErrorCode.FRAME_TIMEOUT


class BufferBudgetExceeded(WireError):
    code = ErrorCode.BUFFER_BUDGET_EXCEEDED


class InternalError(WireError):
    """A bug in the daemon: ``error_id`` names its ``command_failed`` log line."""

    code = ErrorCode.INTERNAL


class ReviewTooLarge(WireError):
    code = ErrorCode.REVIEW_TOO_LARGE


class BadReply(CutterError):
    """A reply the client cannot decode, or of the wrong kind."""

    code = ErrorCode.BAD_REPLY


class UnknownCode(CutterError):
    """An ``error`` frame whose code this client does not know (a newer daemon): its
    message keeps the daemon's code and message, so nothing it said is lost."""

    code = ErrorCode.UNKNOWN_CODE


class UsageError(CutterError):
    code = ErrorCode.USAGE


class BadRequestDigest(CutterError):
    code = ErrorCode.BAD_REQUEST_DIGEST


class ReviewDecisionRequired(CutterError):
    code = ErrorCode.REVIEW_DECISION_REQUIRED
