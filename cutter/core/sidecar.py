"""The sidecar: the persisted state of one run, the single source of truth for resume.

``transition`` is the only way a sidecar's state changes; it checks the table
in ``cutter.core.states``. Everything here is pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from cutter.core.errors import MESSAGE_LIMIT, RunNotAtGate, StopCode, one_line
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.restoring import RestoreOrder
from cutter.core.route import Gate, Phase, Pin, PinValue, gates_due
from cutter.core.states import AWAITING, Rollback, RunState, check_transition

SIDECAR_SCHEMA = 1


class Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class StopInfo(Struct, frozen=True, kw_only=True):
    code: StopCode
    message: str
    error_id: str | None = None


class ApprovalUse(Struct, frozen=True, kw_only=True):
    """An approval consumed at a gate: who decided (``approver``), which principal the
    daemon authenticated for it (the approver, or a relay that forwarded it), the
    connection that resumed the run (``peer``), when."""

    approval_kb_id: str
    approver: str
    decision: Decision
    peer: str | None
    consumed_at: datetime
    review_decision_id: str | None = None
    principal: str | None = None
    # How the approver was proven: "signature" (``signer_key`` is the key's type and
    # fingerprint), "database", "web" (a review-page link the daemon minted for
    # ``principal``), "peer" (the daemon authenticated ``principal``), None (neither:
    # an approval not stored through the daemon, on a gate that accepts "peer").
    proof: str | None = None
    signer_key: str | None = None

    @property
    def relayed_by(self) -> str | None:
        """The relay that forwarded this decision for ``approver``, if one did."""
        if self.principal is None or self.principal == self.approver:
            return None
        return self.principal


class GateRecord(Struct, frozen=True, kw_only=True):
    gate: Gate
    request_kb_id: str
    request_digest: str
    nonce: str
    opened_at: datetime
    required_approvals: int
    uses: tuple[ApprovalUse, ...] = ()

    @property
    def approvers(self) -> frozenset[str]:
        return frozenset(u.approver for u in self.uses)

    @property
    def rejected(self) -> bool:
        return any(u.decision is Decision.REJECT for u in self.uses)

    @property
    def satisfied(self) -> bool:
        return not self.rejected and len(self.approvers) >= self.required_approvals


class DriftUnit(Struct, frozen=True, kw_only=True):
    """A unit whose bytes a drift is about: ``change`` is changed, appeared or vanished."""

    label: str
    change: str


class DriftItem(Struct, frozen=True, kw_only=True):
    pin: str
    before: str
    after: str
    units: tuple[DriftUnit, ...] = ()  # the units behind a source or staged-row drift


class Undo(Struct, frozen=True, kw_only=True):
    """Undoing a live run's writes, recorded (ROLLBACK_PENDING) before a row is touched.

    Whoever finishes it — this walk, ``resume``, ``abort``, a restart's recovery —
    restores the rows from the backup, appends a rollback envelope with this same
    ``reason`` (an equal envelope is appended once) and ends the run in ``then``."""

    then: RunState  # FAILED, REJECTED or ABORTED
    cause: str  # the stop's message, before what the rollback adds to it
    reason: str  # the rollback envelope's reason
    change_set_id: str  # the change set undone (leg A's, pinned or not yet)
    status: Rollback = Rollback.PENDING
    checked: bool = True  # False: the store could not be read; the next attempt decides again
    error_id: str | None = None  # the last failed attempt, as the log's rollback_failed names it


def undo_message(undo: Undo) -> str:
    """The stop message of a run being undone or undone: its cause (shortened to fit),
    then where the undo stands."""
    if undo.status is Rollback.DONE:
        where = "its writes were rolled back"
    elif undo.error_id is not None:
        where = (
            f"rollback pending: the last attempt failed (error_id {undo.error_id}); "
            "resume, abort or a restart retries it"
        )
    else:
        where = "rollback pending"
    return f"{one_line(undo.cause, MESSAGE_LIMIT - len(where) - 2)}; {where}"


class Sidecar(Struct, frozen=True, kw_only=True):
    schema: int = SIDECAR_SCHEMA
    run_id: str
    doc_id: str
    mode: Mode
    started_by: str
    batch_id: str | None = None
    created_at: datetime
    updated_at: datetime
    state: RunState
    stop: StopInfo | None = None
    phases_passed: tuple[Phase, ...] = ()
    pins: dict[Pin, PinValue] = {}
    phase_docs: dict[Phase, str] = {}
    gates: tuple[GateRecord, ...] = ()
    drift: tuple[DriftItem, ...] = ()
    undo: Undo | None = None
    # The principal the daemon authenticated for the start: ``started_by`` itself,
    # or a relay that started the run for ``started_by``. None: started in-process.
    started_by_principal: str | None = None
    # How many times the run was saved since ``create``: every save is the stored
    # revision + 1, and the run store refuses any other (``RunChanged``): a walker
    # holding a stale copy cannot write over another's progress. Sidecars stored
    # before the field read as revision 0.
    revision: Annotated[int, msgspec.Meta(ge=0)] = 0
    # A restore run (``cutter revert``, ``cutter restore``): what it puts back. None: a
    # cut. The phase bodies are chosen by it (``cutter.walk.phases.bodies_for``).
    restore: RestoreOrder | None = None

    @property
    def stop_code(self) -> str | None:
        return self.stop.code.value if self.stop else None

    @property
    def pending_gate(self) -> GateRecord | None:
        """The gate this run waits at, if it waits at one."""
        if self.state in AWAITING and self.gates:
            return self.gates[-1]
        return None

    def waiting_gate(self, consequence: str) -> GateRecord:
        """The gate this run waits at, or ``RunNotAtGate`` saying what therefore
        cannot happen (``consequence``: "nothing to review", "no link", ...)."""
        gate = self.pending_gate
        if gate is None:
            raise RunNotAtGate(
                self.run_id,
                f"run {self.run_id} is {self.state.value} and waits at no gate: {consequence}",
            )
        return gate

    @property
    def approvals_used(self) -> frozenset[str]:
        """The kb_ids of every approval this run recorded as used, at any gate."""
        return frozenset(u.approval_kb_id for g in self.gates for u in g.uses)

    def gate(self, gate: Gate) -> GateRecord | None:
        for record in self.gates:
            if record.gate is gate:
                return record
        return None


def transition(sidecar: Sidecar, target: RunState, *, at: datetime, **changes: Any) -> Sidecar:
    """A new sidecar in ``target`` state (checked against the table) with ``changes``,
    one revision after ``sidecar``."""
    check_transition(sidecar.state, target)
    return msgspec.structs.replace(
        sidecar, state=target, updated_at=at, **changes, revision=sidecar.revision + 1
    )


def amend(sidecar: Sidecar, *, at: datetime, **changes: Any) -> Sidecar:
    """A new sidecar in the same state with ``changes`` (pins, phase docs, gate uses),
    one revision after ``sidecar``."""
    if "state" in changes:
        raise ValueError("use transition() to change state")
    return msgspec.structs.replace(sidecar, updated_at=at, **changes, revision=sidecar.revision + 1)


def replace_gate(sidecar: Sidecar, record: GateRecord) -> tuple[GateRecord, ...]:
    return tuple(record if g.gate is record.gate else g for g in sidecar.gates)


def gate_due(sidecar: Sidecar) -> Gate | None:
    """The gate this run must stop at before its next phase, if any."""
    return gates_due(
        sidecar.phases_passed,
        satisfied=frozenset(g.gate for g in sidecar.gates if g.satisfied),
        opened=frozenset(g.gate for g in sidecar.gates),
    )
