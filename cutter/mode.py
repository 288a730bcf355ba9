"""Execution modes and the live-execution switch.

The switch is the package flag ``cutter.__execution_enabled__``: False unless an
operator turns it on explicitly (``enable_execution()``, or the
``--enable-execution`` flag of the CLI). While it is off, asking for
``Mode.LIVE`` raises ``ProductionExecutionNotAuthorized`` before anything is
touched.
"""

from __future__ import annotations

import enum

import cutter
from cutter.errors import ProductionExecutionNotAuthorized


class Mode(enum.StrEnum):
    DRY_RUN = "DRY_RUN"
    LIVE = "LIVE"


def execution_enabled() -> bool:
    return cutter.__execution_enabled__ is True


def enable_execution(enabled: bool = True) -> None:
    cutter.__execution_enabled__ = enabled


def require_mode_allowed(mode: Mode) -> None:
    if mode is Mode.LIVE and not execution_enabled():
        raise ProductionExecutionNotAuthorized()
