"""The run supervisor: one per run and walk segment. It spawns one actor per
phase and one gatekeeper, walks the run to its next stop, and ends the run with a
clean stop code when a child fails — the process never crashes.

Children are spawned when the segment first needs them (a phase's actor when the
walk reaches the phase, the gatekeeper at the first gate command), so a segment
pays only for the phases it walks. A segment ends at every stop (a gate, a halt,
the end), and the supervisor and its children stop with it: a paused run holds
its sidecar and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, assert_never

from actors import Actor, ActorCrashed, ActorRef, AskTimeout, ChildFailed, Context, Request
from cutter.approvals import GatePolicy
from cutter.drift import drift_message
from cutter.errors import (
    ApprovalConsumedAlready,
    KillSwitchEngaged,
    RunChanged,
    RunNotAbortable,
    RunNotAtGate,
    StopCode,
    StopContractViolated,
    new_error_id,
    one_line,
)
from cutter.failpoints import failpoint
from cutter.gatekeeper import Gatekeeper
from cutter.logs import Logger, get_logger
from cutter.messages import (
    Abort,
    ApprovalConsumed,
    ApprovalRefused,
    ConsumeApproval,
    DriftDetected,
    GatekeeperCommand,
    GatekeeperReply,
    OpenGate,
    PhaseFailed,
    PhasePassed,
    PhaseReply,
    Refused,
    RunPhase,
    SupervisorCommand,
    SupervisorReply,
    Walk,
    WalkStopped,
    refused,
)
from cutter.mode import Mode
from cutter.phase_actor import PhaseActor
from cutter.phases import Services
from cutter.ports import KillSwitch, RunStore
from cutter.recorder import RunRecorder
from cutter.secrets import scrub
from cutter.sidecar import Sidecar, StopInfo, gate_due
from cutter.states import AWAITING, RunState
from cutter.stopping import RunStops
from cutter.transitions import NO_TRANSITIONS, FailedPhase, PassedPhase, StartedPhase, Transitions
from cutter.walk import (
    PHASES,
    SANDBOX_REPLAY,
    Gate,
    Phase,
    check_inputs,
    check_outputs,
    next_phase,
    same_pin,
)

M = TypeVar("M")
R = TypeVar("R")
T = TypeVar("T")


# A paused run, and one whose undo did not finish (aborting it retries the undo).
ABORTABLE = frozenset({*AWAITING, RunState.HALTED, RunState.ROLLBACK_PENDING})


def _never() -> bool:
    return False


def _no_abort() -> Abort | None:
    return None


@dataclass(frozen=True, slots=True)
class RunDeps:
    """Everything one walk segment needs; ``services.target`` is already a sandbox
    for a dry run. ``pause_requested`` and ``abort_requested`` are asked at every
    phase boundary (a draining daemon; an operator aborting a walking run)."""

    services: Services
    run_store: RunStore
    kill_switch: KillSwitch
    policy: GatePolicy
    phase_timeout: float
    pause_requested: Callable[[], bool] = _never
    abort_requested: Callable[[], Abort | None] = _no_abort
    transitions: Transitions = NO_TRANSITIONS  # where the recorder publishes transitions


class RunSupervisor(Actor[SupervisorCommand, SupervisorReply]):
    def __init__(self, sidecar: Sidecar, deps: RunDeps) -> None:
        self.sidecar = sidecar
        self.deps = deps
        self.log: Logger = get_logger(run_id=sidecar.run_id, doc_id=sidecar.doc_id)
        self.recorder = RunRecorder(deps.run_store, deps.services.clock, self.log, deps.transitions)
        self.stops = RunStops(self.recorder, deps.services, self.log)
        self.phases: dict[Phase, ActorRef[RunPhase, PhaseReply]] = {}
        self.gatekeeper: ActorRef[GatekeeperCommand, GatekeeperReply] | None = None
        self.ctx: Context | None = None

    async def started(self, ctx: Context) -> None:
        self.ctx = ctx  # for spawning children on demand

    async def on_child_failed(self, failure: ChildFailed, ctx: Context) -> None:
        # The ask to the child has already raised ActorCrashed and stopped the run;
        # this is the supervision record of it.
        self.log.error(
            "child_failed",
            child=failure.child,
            error_id=failure.error_id,
            error_type=failure.error_type,
        )

    async def receive(self, message: SupervisorCommand, ctx: Context) -> SupervisorReply:
        try:
            match message:
                case Walk():
                    return await self._walk(message)
                case Abort():
                    return await self._abort(message)
                case _:
                    assert_never(message)
        except RunChanged as exc:
            self.log.warning("walk_refused", code=exc.code, reason=exc.message)
            kb_id = message.approval_kb_id if isinstance(message, Walk) else None
            if kb_id is not None and await self.deps.run_store.consumed_by(kb_id) is not None:
                # Raced by another resumer that used this approval first.
                return refused(
                    code=ApprovalConsumedAlready.code,
                    message=f"approval {kb_id} was consumed already",
                    approval_kb_id=kb_id,
                )
            return refused(code=exc.code, message=exc.message)

    # --- the walk -----------------------------------------------------------
    async def _walk(self, message: Walk) -> SupervisorReply:
        sc = self.sidecar
        if message.approval_kb_id is not None and sc.state not in AWAITING:
            # An approval only ever releases a waiting gate. Refusing it here also
            # keeps a second resumer from walking a run another process advanced.
            kb_id = message.approval_kb_id
            if await self.deps.run_store.consumed_by(kb_id) is not None:
                return refused(
                    code=ApprovalConsumedAlready.code,
                    message=f"approval {kb_id} was consumed already",
                    approval_kb_id=kb_id,
                )
            return refused(
                code=RunNotAtGate.code,
                message=f"run is {sc.state}, not waiting at a gate; approval {kb_id} not used",
            )
        if sc.state is RunState.ROLLBACK_PENDING:
            # A resume (or a restart's recovery) of a run whose undo was interrupted.
            self.sidecar = await self.stops.finish(sc)
            return WalkStopped(sidecar=self.sidecar)
        if sc.mode is Mode.DRY_RUN and not await self._replay_sandbox():
            return WalkStopped(sidecar=self.sidecar)
        sc = self.sidecar
        if sc.state is RunState.CREATED:
            sc = await self.recorder.move(sc, RunState.RUNNING)
        elif sc.state in AWAITING:
            reply = await self._pass_gate(sc, message)
            if reply is not None:
                return reply
            sc = self.sidecar
            if sc.state is not RunState.RUNNING:
                return WalkStopped(sidecar=sc)
        elif sc.state is RunState.HALTED:
            if await self.deps.kill_switch.engaged():
                return refused(code=KillSwitchEngaged.code, message="the kill switch is engaged")
            sc = await self.recorder.move(sc, RunState.RUNNING, stop=None)
        self.sidecar = sc
        await self._advance()
        return WalkStopped(sidecar=self.sidecar)

    async def _pass_gate(self, sc: Sidecar, message: Walk) -> SupervisorReply | None:
        gate = sc.pending_gate
        assert gate is not None
        if not (gate.satisfied or gate.rejected):
            reply = await self._ask_gatekeeper(
                ConsumeApproval(
                    sidecar=sc, approval_kb_id=message.approval_kb_id, peer=message.peer
                )
            )
            match reply:
                case None:
                    return WalkStopped(sidecar=self.sidecar)
                case ApprovalRefused():
                    return Refused(refusal=reply.refusal)
                case DriftDetected():
                    await self._stop(
                        RunState.FAILED,
                        StopCode.DRIFT,
                        drift_message(reply.items),
                        drift=reply.items,
                    )
                    return WalkStopped(sidecar=self.sidecar)
                case ApprovalConsumed():
                    sc = self.sidecar = reply.sidecar
                case _:
                    assert_never(reply)
        gate = sc.pending_gate
        if gate is not None and gate.rejected:
            await self._stop(
                RunState.REJECTED,
                StopCode.APPROVAL_REJECTED,
                f"{gate.gate} rejected",
                reason="rejected at " + gate.gate.value,
            )
        elif gate is not None and gate.satisfied:
            # The approval was consumed but the advance not recorded (crash): finish it.
            self.sidecar = await self.recorder.move(sc, RunState.RUNNING, stop=None)
        return None

    async def _advance(self) -> None:
        """Walk phase by phase. Before every phase, the gates behind the run must have
        been passed: a gate whose phase passed but which was never opened (a crash
        between the two) is opened now — never walked past."""
        while True:
            try:
                due = gate_due(self.sidecar)
            except StopContractViolated as exc:
                await self._stop(
                    RunState.FAILED, exc.stop_code, exc.message, error_id=new_error_id()
                )
                return
            if due is not None:
                await self._open_gate(due)
                return
            phase = next_phase(self.sidecar.phases_passed)
            if phase is None:
                break
            abort = self.deps.abort_requested()
            if abort is not None:
                await self._aborted(abort)
                return
            if self.deps.pause_requested():
                self.log.info("walk_paused", phase=phase.value, reason="draining")
                return  # still RUNNING: the next start of the runner continues it
            if self.sidecar.mode is Mode.LIVE and await self.deps.kill_switch.engaged():
                await self._stop(RunState.HALTED, StopCode.KILL_SWITCH, "kill switch engaged")
                return
            if not await self._run_phase(phase):
                return
        self.sidecar = await self.recorder.move(self.sidecar, RunState.CLOSEOUT_REPORTED)

    async def _open_gate(self, gate: Gate) -> None:
        reply = await self._ask_gatekeeper(OpenGate(sidecar=self.sidecar, gate=gate))
        if reply is not None:
            self.sidecar = reply.sidecar

    async def _run_phase(self, phase: Phase) -> bool:
        sc = self.sidecar
        try:
            check_inputs(phase, sc.pins)
        except StopContractViolated as exc:
            await self._stop(RunState.FAILED, exc.stop_code, exc.message, error_id=new_error_id())
            return False
        failpoint(f"before:{phase.value}")
        self.recorder.announce(sc, StartedPhase(phase=phase))
        reply = await self._ask_phase(phase, RunPhase(sidecar=sc))
        if isinstance(reply, PhaseFailed):
            self.recorder.announce(
                sc, FailedPhase(phase=phase, code=reply.code.value, error_id=reply.error_id)
            )
            await self._stop(RunState.FAILED, reply.code, reply.message, error_id=reply.error_id)
            return False
        try:
            check_outputs(phase, sc.pins, reply.pins)
        except StopContractViolated as exc:
            error_id = new_error_id()
            self.recorder.announce(sc, FailedPhase(phase=phase, code=exc.code, error_id=error_id))
            await self._stop(RunState.FAILED, exc.stop_code, exc.message, error_id=error_id)
            return False
        phase_docs = dict(sc.phase_docs)
        if reply.kb_id is not None:
            phase_docs[phase] = reply.kb_id
        self.sidecar = await self.recorder.amend(
            sc,
            pins={**sc.pins, **reply.pins},
            phases_passed=(*sc.phases_passed, phase),
            phase_docs=phase_docs,
        )
        self.recorder.announce(
            self.sidecar, PassedPhase(phase=phase, pins=tuple(sorted(reply.pins)))
        )
        failpoint(f"after:{phase.value}")
        return True

    async def _replay_sandbox(self) -> bool:
        """A dry run's sandbox is new each segment: re-apply its earlier writes."""
        for phase in PHASES:
            if phase in SANDBOX_REPLAY and phase in self.sidecar.phases_passed:
                reply = await self._ask_phase(phase, RunPhase(sidecar=self.sidecar, replay=True))
                pins = self.sidecar.pins
                if isinstance(reply, PhasePassed) and all(
                    p in pins and same_pin(pins[p], v) for p, v in reply.pins.items()
                ):
                    continue
                await self._stop(
                    RunState.FAILED,
                    StopCode.VERIFY_FAILED,
                    f"dry-run replay of {phase} did not reproduce its pins",
                )
                return False
        return True

    # --- children -----------------------------------------------------------
    async def _ask_phase(self, phase: Phase, message: RunPhase) -> PhaseReply:
        ref = self.phases.get(phase)
        if ref is None:
            actor = PhaseActor(phase, self.deps.services)
            ref = self.phases[phase] = await self._spawn(actor, phase.value)
        try:
            return await ref.ask(message, timeout=self.deps.phase_timeout)
        except ActorCrashed as exc:
            return PhaseFailed(
                phase=phase,
                code=StopCode.PHASE_FAILED,
                message=f"{phase} failed unexpectedly ({exc.error_type})",
                error_id=exc.error_id,
            )
        except AskTimeout:
            # Cancelled before anything is undone: a phase still writing would race the undo.
            del self.phases[phase]
            await ref.stop(timeout=0)
            return PhaseFailed(
                phase=phase,
                code=StopCode.PHASE_FAILED,
                message=f"{phase} did not finish within {self.deps.phase_timeout:g}s",
                error_id=new_error_id(),
            )

    async def _ask_gatekeeper(self, message: Request[T]) -> T | None:
        """The gatekeeper's reply, or None when it crashed and the run was stopped."""
        if self.gatekeeper is None:
            actor = Gatekeeper(self.deps.services, self.recorder, self.deps.policy)
            self.gatekeeper = await self._spawn(actor, "gatekeeper")
        try:
            return await self.gatekeeper.ask(message, timeout=self.deps.phase_timeout)
        except ActorCrashed as exc:
            why, error_id = f"failed unexpectedly ({exc.error_type})", exc.error_id
        except AskTimeout:
            await self.gatekeeper.stop(timeout=0)
            why = f"did not answer within {self.deps.phase_timeout:g}s"
            error_id = new_error_id()
        self.gatekeeper = None
        # It may have persisted an advance before failing: stop from the stored truth.
        self.sidecar = await self.deps.run_store.load(self.sidecar.run_id)
        await self._stop(
            RunState.FAILED, StopCode.PHASE_FAILED, f"gatekeeper {why}", error_id=error_id
        )
        return None

    async def _spawn(self, actor: Actor[M, R], name: str) -> ActorRef[M, R]:
        assert self.ctx is not None, "children are spawned once the supervisor started"
        return await self.ctx.spawn(actor, name)

    # --- stops ----------------------------------------------------------------
    async def _abort(self, message: Abort) -> SupervisorReply:
        state = self.sidecar.state
        if state not in ABORTABLE:
            return refused(
                code=RunNotAbortable.code,
                message=f"run is {state}; only a paused run or one rolling back can be aborted",
            )
        await self._aborted(message)
        return WalkStopped(sidecar=self.sidecar)

    async def _aborted(self, abort: Abort) -> None:
        why = f"aborted by {abort.by}: {abort.reason}"
        await self._stop(RunState.ABORTED, StopCode.OPERATOR_ABORT, why, reason=why)

    async def _stop(
        self,
        state: RunState,
        code: StopCode,
        message: str,
        *,
        error_id: str | None = None,
        reason: str | None = None,
        **changes: object,
    ) -> None:
        """Stop the run (``RunStops``): a live run's writes are undone on the way.
        ``reason`` is the rollback envelope's; by default the stop code and message."""
        # What a run records is read by reviewers and kept: never a DSN's password.
        stop = StopInfo(code=code, message=scrub(one_line(message)), error_id=error_id)
        self.sidecar = await self.stops.stop(
            self.sidecar,
            state,
            stop,
            reason=f"{code.value}: {stop.message}" if reason is None else reason,
            **changes,
        )
