"""System messages the runtime itself sends to actors."""

from __future__ import annotations

import secrets

import msgspec

_MESSAGE_LIMIT = 200


class ChildFailed(msgspec.Struct, frozen=True, kw_only=True):
    """A child actor failed; delivered through the parent's mailbox to `on_child_failed`.

    `error_id` is also carried by the runtime's `actor_failed` log event, which holds the
    traceback; this message holds only a one-line summary.
    """

    child: str
    error_type: str
    message: str
    error_id: str


def new_error_id() -> str:
    """A random hex id tying a failure report to its `actor_failed` log event."""
    return secrets.token_hex(8)


def describe_failure(child: str, exc: BaseException, error_id: str) -> ChildFailed:
    """Summarise `exc`, raised inside actor `child`, as a `ChildFailed` message."""
    one_line = " ".join(str(exc).split())
    return ChildFailed(
        child=child,
        error_type=type(exc).__name__,
        message=one_line[:_MESSAGE_LIMIT],
        error_id=error_id,
    )
