"""The events a notice can be (``cutter.core.notices``), apart so the policy's webhooks
(``cutter.core.webhooks``) can name them without importing the sidecar."""

from __future__ import annotations

from typing import Literal

NoticeEvent = Literal[
    "gate_opened", "approval_consumed", "run_stopped", "closeout", "approval_reminder"
]
EVENTS: tuple[NoticeEvent, ...] = (
    "gate_opened",
    "approval_consumed",
    "run_stopped",
    "closeout",
    "approval_reminder",
)
