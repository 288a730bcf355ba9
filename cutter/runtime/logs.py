"""Structured logging: one event per transition, JSON lines in production.

Event names are constant snake_case; values are key-values. ``TRANSITION_EVENTS``
is the set of events that record a transition of a run (tests assert their order):
the run recorder logs each from a typed ``cutter.core.transitions.Transition``, which it
also publishes to the daemon's watchers — nothing reads transitions back from the log.

No secret reaches a log line (docs/operations.md, "Secrets"): a logged exception is
rendered without its frames' local variables (``show_locals=False``: a local may be
a DSN), and every string of every event is scrubbed of DSN passwords
(``cutter.core.secrets.scrub_event``) just before it is rendered. A log file is opened
owner-only (``open_private_log``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import msgspec
import structlog
from structlog.typing import FilteringBoundLogger, Processor

from cutter.core.secrets import scrub, scrub_event
from cutter.runtime.quiet_logs import quiet_default_in_force

# What ``get_logger`` returns: structlog's bound logger, as its protocol types it.
Logger = FilteringBoundLogger

TRANSITION_EVENTS = frozenset(
    {
        "run_state_changed",
        "phase_started",
        "phase_passed",
        "phase_failed",
        "gate_opened",
        "gate_closed",
        "approval_consumed",
        "approval_refused",
        "drift_detected",
    }
)

_json = msgspec.json.Encoder()


def _serialize(value: Any, **_: Any) -> str:
    """structlog's JSONRenderer passes ``default=``; msgspec takes ``enc_hook``."""
    return _json.encode(msgspec.to_builtins(value, enc_hook=_text, str_keys=True)).decode()


def _text(value: Any) -> str:
    return scrub(str(value))


# A logged exception: its chain, frames and messages, never the frames' locals.
exception_dicts = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_json(stream: TextIO | None = None, *, tap: Processor | None = None) -> None:
    """JSON lines, one event a line, to ``stream`` (stdout by default). ``tap`` sees
    every event before it is rendered (the daemon's short lines on a terminal)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([tap] if tap else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exception_dicts,
            scrub_event,
            structlog.processors.JSONRenderer(serializer=_serialize),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Logger:
    log: Logger = structlog.get_logger("cutter").bind(**bound)
    return log


LOG_FILE_MODE = 0o600


def open_private_log(path: Path) -> TextIO:
    """``path`` opened for appending, line-buffered, readable by its owner alone: made
    0600, and an existing file's group and other bits are dropped."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_FILE_MODE)
    try:
        mode = os.fstat(fd).st_mode & 0o7777
        if mode & 0o077:
            os.fchmod(fd, mode & ~0o077)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)
    except BaseException:
        os.close(fd)
        raise


def _exception_line(sio: TextIO, exc_info: Any) -> None:
    """A logged exception on a terminal: its type and scrubbed message, one line."""
    exc = exc_info[1]
    sio.write("\n" + scrub(f"{type(exc).__name__}: {' '.join(str(exc).split())}"))


def configure_console() -> None:
    """The CLI's logging unless something configured it already: structlog's console
    default, but an exception is one scrubbed line (no traceback, no locals) and
    every value is scrubbed of DSN passwords."""
    if structlog.is_configured() and not quiet_default_in_force():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            scrub_event,
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_exception_line),
        ],
        cache_logger_on_first_use=False,
    )
