"""The run state machine as a transition table. An illegal transition raises.

    CREATED ──▶ RUNNING ──▶ AWAITING_CUT_AUTHORIZATION ──▶ RUNNING ──▶
        AWAITING_LIFECYCLE_AUTHORIZATION ──▶ RUNNING ──▶ CLOSEOUT_REPORTED

From RUNNING a run may also end FAILED (a phase stop, drift) or be HALTED by
the kill switch (resumable, or FAILED if it cannot be). A run waiting at a gate
may be REJECTED, ABORTED, or end FAILED with ``STOP_DRIFT`` when its pins no
longer hold. RUNNING → ABORTED is for an abort that reaches a walking run at
its next phase boundary (the daemon).
"""

from __future__ import annotations

import enum


class RunState(enum.StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    AWAITING_CUT_AUTHORIZATION = "AWAITING_CUT_AUTHORIZATION"
    AWAITING_LIFECYCLE_AUTHORIZATION = "AWAITING_LIFECYCLE_AUTHORIZATION"
    HALTED = "HALTED"
    CLOSEOUT_REPORTED = "CLOSEOUT_REPORTED"
    REJECTED = "REJECTED"
    ABORTED = "ABORTED"
    FAILED = "FAILED"


class IllegalTransition(Exception):
    """A bug, not bad input: code asked the state machine for an edge it does not have."""

    def __init__(self, source: RunState, target: RunState) -> None:
        self.source = source
        self.target = target
        super().__init__(f"illegal run transition {source} -> {target}")


_GATES = frozenset({RunState.AWAITING_CUT_AUTHORIZATION, RunState.AWAITING_LIFECYCLE_AUTHORIZATION})

TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.CREATED: frozenset({RunState.RUNNING, RunState.FAILED}),
    RunState.RUNNING: frozenset(
        {*_GATES, RunState.HALTED, RunState.CLOSEOUT_REPORTED, RunState.FAILED, RunState.ABORTED}
    ),
    RunState.AWAITING_CUT_AUTHORIZATION: frozenset(
        {RunState.RUNNING, RunState.REJECTED, RunState.ABORTED, RunState.FAILED}
    ),
    RunState.AWAITING_LIFECYCLE_AUTHORIZATION: frozenset(
        {RunState.RUNNING, RunState.REJECTED, RunState.ABORTED, RunState.FAILED}
    ),
    RunState.HALTED: frozenset({RunState.RUNNING, RunState.ABORTED, RunState.FAILED}),
    RunState.CLOSEOUT_REPORTED: frozenset(),
    RunState.REJECTED: frozenset(),
    RunState.ABORTED: frozenset(),
    RunState.FAILED: frozenset(),
}

TERMINAL: frozenset[RunState] = frozenset(s for s, out in TRANSITIONS.items() if not out)
AWAITING: frozenset[RunState] = _GATES


def check_transition(source: RunState, target: RunState) -> None:
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(source, target)
