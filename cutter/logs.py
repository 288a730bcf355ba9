"""Structured logging: one event per transition, JSON lines in production.

Event names are constant snake_case; values are key-values. ``TRANSITION_EVENTS``
is the set of events that record a transition of a run (tests assert their order).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog
from structlog.typing import Processor

Logger = Any  # structlog's BoundLogger is dynamically typed

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
    return _json.encode(msgspec.to_builtins(value, enc_hook=str, str_keys=True)).decode()


def configure_json(stream: TextIO | None = None, *, tap: Processor | None = None) -> None:
    """JSON lines, one event a line, to ``stream`` (stdout by default). ``tap`` sees
    every event before it is rendered (the daemon's watchers)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([tap] if tap else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(serializer=_serialize),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Logger:
    return structlog.get_logger("cutter").bind(**bound)
