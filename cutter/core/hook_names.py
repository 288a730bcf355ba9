"""The events a hook can be named for (pure, imports nothing): the policy's ``hooks``
table and the hooks directory's file names are these, and nothing else."""

from __future__ import annotations

import enum


class HookEvent(enum.StrEnum):
    """Where hooks run; a hook in the hooks directory is named exactly this."""

    BEFORE_LEG_A = "before_leg_a"
    BEFORE_LIFECYCLE_ENACT = "before_lifecycle_enact"
    GATE_OPENED = "gate_opened"
    APPROVAL_CONSUMED = "approval_consumed"
    RUN_STOPPED = "run_stopped"
    CLOSEOUT = "closeout"
    APPROVAL_REMINDER = "approval_reminder"


# The events whose hooks may stop the run: a non-zero exit vetoes the write they guard.
# The others are notices (``cutter.core.notices``): the outbox's deliverer runs their
# hooks, as it POSTs their webhooks, after the run saved them (docs/notifications.md).
VETOING = frozenset({HookEvent.BEFORE_LEG_A, HookEvent.BEFORE_LIFECYCLE_ENACT})
