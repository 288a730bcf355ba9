"""A run's transitions as typed values: what the recorder logs and publishes (pure).

Each kind of change is its own frozen struct, tagged with the name of the log event
that records it (``cutter.runtime.logs.TRANSITION_EVENTS``), so a watcher matches on a type
and its fields are checked, not looked up in a log dict. A ``Transition`` is one
change of one run. The recorder (``cutter.walk.recorder.RunRecorder.announce``) logs it
and hands it to a ``Transitions`` sink — the daemon's event bus — so watchers see
the same transitions in the same order whatever the log configuration.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Protocol

import msgspec

from cutter.core.errors import ErrorCode, StopCode
from cutter.core.kbdocs import Decision
from cutter.core.route import Gate, Phase, Pin
from cutter.core.sidecar import DriftItem
from cutter.core.states import RunState


class Change(msgspec.Struct, frozen=True, kw_only=True, tag_field="event"):
    """One kind of transition; its tag is its log event's name."""

    level: ClassVar[int] = logging.INFO

    @property
    def event(self) -> str:
        tag = type(self).__struct_config__.tag
        assert isinstance(tag, str)
        return tag

    def fields(self) -> dict[str, Any]:
        """The log event's key-values: the fields, enums as their values, lists."""
        fields: dict[str, Any] = msgspec.to_builtins(self)
        del fields["event"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


class ChangedState(Change, frozen=True, kw_only=True, tag="run_state_changed"):
    from_state: RunState
    to_state: RunState
    stop_code: StopCode | None


class StartedPhase(Change, frozen=True, kw_only=True, tag="phase_started"):
    phase: Phase


class PassedPhase(Change, frozen=True, kw_only=True, tag="phase_passed"):
    phase: Phase
    pins: tuple[Pin, ...]  # the pins it took, sorted


class FailedPhase(Change, frozen=True, kw_only=True, tag="phase_failed"):
    level: ClassVar[int] = logging.WARNING

    phase: Phase
    code: str
    error_id: str


class OpenedGate(Change, frozen=True, kw_only=True, tag="gate_opened"):
    gate: Gate
    request_kb_id: str
    request_digest: str


class ConsumedApproval(Change, frozen=True, kw_only=True, tag="approval_consumed"):
    gate: Gate
    approval_kb_id: str
    approver: str
    principal: str | None
    peer: str | None
    proof: str | None
    signer_key: str | None
    decision: Decision
    recovered: bool


class ClosedGate(Change, frozen=True, kw_only=True, tag="gate_closed"):
    gate: Gate
    decision: Decision


class RefusedApproval(Change, frozen=True, kw_only=True, tag="approval_refused"):
    level: ClassVar[int] = logging.WARNING

    gate: Gate
    approval_kb_id: str | None
    code: ErrorCode
    reason: str
    error_id: str


class DetectedDrift(Change, frozen=True, kw_only=True, tag="drift_detected"):
    level: ClassVar[int] = logging.WARNING

    gate: Gate
    approval_kb_id: str
    drift: tuple[DriftItem, ...]

    def fields(self) -> dict[str, Any]:
        """A unit behind a drift is logged as one ``"<change> <label>"`` string."""
        return {
            "gate": self.gate.value,
            "approval_kb_id": self.approval_kb_id,
            "drift": [
                {
                    "pin": d.pin,
                    "before": d.before,
                    "after": d.after,
                    "units": [f"{u.change} {u.label}" for u in d.units],
                }
                for d in self.drift
            ],
        }


AnyChange = (
    ChangedState
    | StartedPhase
    | PassedPhase
    | FailedPhase
    | OpenedGate
    | ConsumedApproval
    | ClosedGate
    | RefusedApproval
    | DetectedDrift
)


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """One change of one run."""

    run_id: str
    doc_id: str
    change: AnyChange


class Transitions(Protocol):
    """Where the recorder publishes every transition, after logging it. Called on the
    walk's task: a sink must neither block nor raise (the event bus drops a watcher
    that cannot keep up rather than wait for it)."""

    def publish(self, transition: Transition) -> None: ...


class NoTransitions:
    """The sink of a runner nobody watches."""

    def publish(self, transition: Transition) -> None:
        pass


NO_TRANSITIONS: Transitions = NoTransitions()
