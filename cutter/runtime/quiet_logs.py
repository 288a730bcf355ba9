"""A library is quiet: until the application configures structlog, cutter's events
are dropped instead of printed.

structlog's own default prints every event to stdout, so a program that imports
``cutter`` and drives a ``Runner`` would see the walk's events among its output.
``import cutter`` installs this default only when structlog is not configured yet;
configuring structlog (before or after, as ``cutter daemon`` and ``cutter demo``
do) replaces it, and ``structlog.testing.capture_logs`` still captures.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import structlog


def _drop(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    raise structlog.DropEvent


def quiet_unless_configured() -> None:
    """Drop every event unless the application configured structlog already."""
    if not structlog.is_configured():
        structlog.configure(processors=[_drop], cache_logger_on_first_use=False)


def quiet_default_in_force() -> bool:
    """True while the quiet default is what structlog runs (nobody replaced it), so a
    program's own "unless configured" default (the CLI's console) may replace it."""
    processors = structlog.get_config().get("processors", [])
    return structlog.is_configured() and list(processors) == [_drop]
