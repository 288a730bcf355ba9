"""Execution modes and the live-execution switch.

The switch is this module's flag ``__execution_enabled__``: False unless an
operator turns it on explicitly (``enable_execution()``, or the
``--enable-execution`` flag of the CLI). While it is off, asking for
``Mode.LIVE`` raises ``ProductionExecutionNotAuthorized`` before anything is
touched. The flag lives here, not on the package root, so that deciding a mode
imports nothing but the errors (``cutter/__init__`` imports the runner).
"""

from __future__ import annotations

import enum

from cutter.core.errors import ProductionExecutionNotAuthorized

__execution_enabled__ = False


class Mode(enum.StrEnum):
    DRY_RUN = "DRY_RUN"
    LIVE = "LIVE"


def execution_enabled() -> bool:
    return __execution_enabled__ is True


def enable_execution(enabled: bool = True) -> None:
    global __execution_enabled__
    __execution_enabled__ = enabled


def require_mode_allowed(mode: Mode) -> None:
    if mode is Mode.LIVE and not execution_enabled():
        raise ProductionExecutionNotAuthorized()
