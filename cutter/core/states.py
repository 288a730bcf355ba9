"""The run state machine as a transition table. An illegal transition raises.

    CREATED ──▶ RUNNING ──▶ AWAITING_CUT_AUTHORIZATION ──▶ RUNNING ──▶
        AWAITING_LIFECYCLE_AUTHORIZATION ──▶ RUNNING ──▶ CLOSEOUT_REPORTED

From RUNNING a run may also end FAILED (a phase stop, drift) or be HALTED by
the kill switch (resumable, or FAILED if it cannot be). A run waiting at a gate
may be REJECTED, ABORTED, or end FAILED with ``STOP_DRIFT`` when its pins no
longer hold. RUNNING → ABORTED is for an abort that reaches a walking run at
its next phase boundary (the daemon).

A live run that wrote rows ends FAILED, REJECTED or ABORTED only through
ROLLBACK_PENDING: the stop and the rollback's reason are recorded there before a
row is touched, the rows are restored from the pre-write backup, and only then
does the run end. A crash, or an undo that fails, leaves the run in
ROLLBACK_PENDING, where ``resume``, ``abort`` and a restart's recovery finish it.
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
    ROLLBACK_PENDING = "ROLLBACK_PENDING"


class Rollback(enum.StrEnum):
    """Where undoing a live run's writes stands (``Sidecar.undo``, ``StopDoc.rollback``)."""

    PENDING = "pending"  # recorded, not yet finished: resume, abort or recovery finishes it
    DONE = "done"  # rows restored from the pre-write backup, rollback envelope appended


class IllegalTransition(Exception):
    """A bug, not bad input: code asked the state machine for an edge it does not have."""

    def __init__(self, source: RunState, target: RunState) -> None:
        self.source = source
        self.target = target
        super().__init__(f"illegal run transition {source} -> {target}")


_GATES = frozenset({RunState.AWAITING_CUT_AUTHORIZATION, RunState.AWAITING_LIFECYCLE_AUTHORIZATION})
_UNDONE = frozenset({RunState.FAILED, RunState.REJECTED, RunState.ABORTED})

TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.CREATED: frozenset({RunState.RUNNING, RunState.FAILED}),
    RunState.RUNNING: frozenset(
        {
            *_GATES,
            RunState.HALTED,
            RunState.CLOSEOUT_REPORTED,
            RunState.FAILED,
            RunState.ABORTED,
            RunState.ROLLBACK_PENDING,
        }
    ),
    # Nothing is written before SG_1 is passed: a run waiting there has nothing to undo.
    RunState.AWAITING_CUT_AUTHORIZATION: frozenset({RunState.RUNNING, *_UNDONE}),
    RunState.AWAITING_LIFECYCLE_AUTHORIZATION: frozenset(
        {RunState.RUNNING, *_UNDONE, RunState.ROLLBACK_PENDING}
    ),
    RunState.HALTED: frozenset(
        {RunState.RUNNING, RunState.ABORTED, RunState.FAILED, RunState.ROLLBACK_PENDING}
    ),
    RunState.ROLLBACK_PENDING: _UNDONE,
    RunState.CLOSEOUT_REPORTED: frozenset(),
    RunState.REJECTED: frozenset(),
    RunState.ABORTED: frozenset(),
    RunState.FAILED: frozenset(),
}

TERMINAL: frozenset[RunState] = frozenset(s for s, out in TRANSITIONS.items() if not out)
AWAITING: frozenset[RunState] = _GATES
# The states a run ends in once its writes are undone: where ROLLBACK_PENDING leads.
UNDONE_ENDS: frozenset[RunState] = TRANSITIONS[RunState.ROLLBACK_PENDING]
# A run a process left in one of these is continued by the next one (``Runner.recover``):
# mid-walk, or mid-undo.
RECOVERABLE: frozenset[RunState] = frozenset(
    {RunState.CREATED, RunState.RUNNING, RunState.ROLLBACK_PENDING}
)


def check_transition(source: RunState, target: RunState) -> None:
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(source, target)
