"""The run supervisor: one per run and walk segment. It spawns one actor per
phase and one gatekeeper, walks the run to its next stop, and ends the run with a
clean stop code when a child fails — the process never crashes.

It walks one step per message. ``Walk`` takes its reply slot (``reply_later``) and
the supervisor tells itself a ``_Step``; each step does one thing — enter the walk
(pass the gate the run waits at, resume a halted run, finish an undo), run one
phase, open a gate, or finish — and then either tells itself the next step or
answers the ``Walk``. Abort and drain are ordinary messages, so they are handled
between steps in mailbox order: ``Drain`` and an ``Abort`` of a walking run are
honoured at the next phase boundary; an ``Abort`` of a run not walking at once.
Only a step ends a walk, so no step is ever left over in the mailbox.

The mailbox holds at most one step of the supervisor's own; the runner keeps at
most one ``Abort`` per supervisor in it at a time (``Runner.abort``) and tells
``Drain`` at most once, so a self-sent step never waits for room behind them.

Children are spawned when the segment first needs them (a phase's actor when the
walk reaches the phase, the gatekeeper at the first gate command), so a segment
pays only for the phases it walks. A segment ends at every stop (a gate, a halt,
the end), and the supervisor and its children stop with it: a paused run holds
its sidecar and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar, assert_never

from actors import Actor, ActorCrashed, ActorRef, AskTimeout, ChildFailed, Context, Later, Request
from cutter.core.approvals import GatePolicy
from cutter.core.drift import drift_message
from cutter.core.errors import (
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
from cutter.core.mode import Mode
from cutter.core.ports import KillSwitch, RunStore
from cutter.core.route import (
    PHASES,
    SANDBOX_REPLAY,
    Gate,
    Phase,
    check_inputs,
    check_outputs,
    next_phase,
    same_pin,
)
from cutter.core.secrets import scrub
from cutter.core.sidecar import Sidecar, StopInfo, gate_due
from cutter.core.states import AWAITING, RunState
from cutter.core.transitions import (
    NO_TRANSITIONS,
    FailedPhase,
    PassedPhase,
    StartedPhase,
    Transitions,
)
from cutter.runtime.failpoints import failpoint
from cutter.runtime.logs import Logger, get_logger
from cutter.walk.gatekeeper import Gatekeeper
from cutter.walk.messages import (
    Abort,
    ApprovalConsumed,
    ApprovalRefused,
    ConsumeApproval,
    Drain,
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
from cutter.walk.phase_actor import PhaseActor
from cutter.walk.phases import Services
from cutter.walk.recorder import RunRecorder
from cutter.walk.stopping import RunStops

M = TypeVar("M")
R = TypeVar("R")
T = TypeVar("T")


# A paused run, and one whose undo did not finish (aborting it retries the undo).
ABORTABLE = frozenset({*AWAITING, RunState.HALTED, RunState.ROLLBACK_PENDING})


@dataclass(frozen=True, slots=True)
class RunDeps:
    """Everything one walk segment needs; ``services.target`` is already a sandbox
    for a dry run."""

    services: Services
    run_store: RunStore
    kill_switch: KillSwitch
    policy: GatePolicy
    phase_timeout: float
    transitions: Transitions = NO_TRANSITIONS  # where the recorder publishes transitions


@dataclass(slots=True)
class _Walking:
    """The walk in progress: the ``Walk`` it answers, and the aborts asked meanwhile
    (honoured at the next phase boundary, answered when the walk ends)."""

    command: Walk
    reply: Later[SupervisorReply]
    aborts: list[tuple[Abort, Later[SupervisorReply]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Step:
    """The supervisor's note to itself: take the next step of ``walking``."""

    walking: _Walking
    enter: bool = False  # the walk's first step


Step: TypeAlias = SupervisorReply | None
"""What a step returns: the walk's reply when it stopped, None to take the next step."""

SupervisorMessage: TypeAlias = SupervisorCommand | _Step
SupervisorRef: TypeAlias = ActorRef[SupervisorMessage, SupervisorReply | None]


class RunSupervisor(Actor[SupervisorMessage, SupervisorReply | None]):
    def __init__(self, sidecar: Sidecar, deps: RunDeps) -> None:
        self.sidecar = sidecar
        self.deps = deps
        self.log: Logger = get_logger(run_id=sidecar.run_id, doc_id=sidecar.doc_id)
        self.recorder = RunRecorder(deps.run_store, deps.services.clock, self.log, deps.transitions)
        self.stops = RunStops(self.recorder, deps.services, self.log)
        self.phases: dict[Phase, ActorRef[RunPhase, PhaseReply]] = {}
        self.gatekeeper: ActorRef[GatekeeperCommand, GatekeeperReply] | None = None
        self.ctx: Context | None = None
        self.walking: _Walking | None = None
        self.draining = False  # a Drain came: walks pause at their next phase boundary
        self.aborted = False  # this supervisor aborted the run: a later Abort is answered

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

    async def receive(self, message: SupervisorMessage, ctx: Context) -> SupervisorReply | None:
        match message:
            case Walk():
                if self.walking is not None:  # the runner walks a run once at a time
                    return refused(code=RunChanged.code, message="the run is walking already")
                self.walking = _Walking(message, ctx.reply_later(message))
                await ctx.ref.tell(_Step(self.walking, enter=True))
                return None
            case Abort():
                if self.walking is not None:
                    self.walking.aborts.append((message, ctx.reply_later(message)))
                    return None
                return await self._answer_abort(message)
            case Drain():
                self.draining = True
                return None
            case _Step():
                await self._step(message, ctx)
                return None
            case _:
                assert_never(message)

    async def _step(self, step: _Step, ctx: Context) -> None:
        """Take one step of the walk; then the next, or answer the walk and the aborts
        that came while it walked."""
        walking = step.walking
        try:
            reply = await (self._enter(walking.command) if step.enter else self._advance(walking))
        except RunChanged as exc:
            reply = await self._refused(exc, walking.command.approval_kb_id)
        if reply is None:
            await ctx.ref.tell(_Step(walking))
            return
        self.walking = None
        walking.reply.reply(reply)
        for abort, later in walking.aborts:
            later.reply(await self._answer_abort(abort))

    async def _refused(self, exc: RunChanged, kb_id: str | None) -> Refused:
        self.log.warning("walk_refused", code=exc.code, reason=exc.message)
        # Raced by another resumer that used this approval first?
        used = None if kb_id is None else await self._used_already(kb_id)
        return used or refused(code=exc.code, message=exc.message)

    async def _used_already(self, kb_id: str) -> Refused | None:
        if await self.deps.run_store.consumed_by(kb_id) is None:
            return None
        return refused(
            code=ApprovalConsumedAlready.code,
            message=f"approval {kb_id} was consumed already",
            approval_kb_id=kb_id,
        )

    def _stopped(self) -> WalkStopped:
        return WalkStopped(sidecar=self.sidecar)

    # --- the walk -----------------------------------------------------------
    async def _enter(self, message: Walk) -> Step:
        """The walk's first step: from where the run stands to RUNNING."""
        sc = self.sidecar
        if message.approval_kb_id is not None and sc.state not in AWAITING:
            # An approval only ever releases a waiting gate. Refusing it here also
            # keeps a second resumer from walking a run another process advanced.
            kb_id = message.approval_kb_id
            return await self._used_already(kb_id) or refused(
                code=RunNotAtGate.code,
                message=f"run is {sc.state}, not waiting at a gate; approval {kb_id} not used",
            )
        if sc.state is RunState.ROLLBACK_PENDING:
            # A resume (or a restart's recovery) of a run whose undo was interrupted.
            self.sidecar = await self.stops.finish(sc)
            return self._stopped()
        if sc.mode is Mode.DRY_RUN and not await self._replay_sandbox():
            return self._stopped()
        sc = self.sidecar
        if sc.state is RunState.CREATED:
            self.sidecar = await self.recorder.move(sc, RunState.RUNNING)
        elif sc.state in AWAITING:
            reply = await self._pass_gate(sc, message)
            if reply is not None:
                return reply
            if self.sidecar.state is not RunState.RUNNING:
                return self._stopped()
        elif sc.state is RunState.HALTED:
            if await self.deps.kill_switch.engaged():
                return refused(code=KillSwitchEngaged.code, message="the kill switch is engaged")
            self.sidecar = await self.recorder.move(sc, RunState.RUNNING, stop=None)
        return None

    async def _pass_gate(self, sc: Sidecar, message: Walk) -> Step:
        gate = sc.pending_gate
        assert gate is not None, "a run waiting at a gate has its record"
        if not (gate.satisfied or gate.rejected):
            reply = await self._ask_gatekeeper(
                ConsumeApproval(
                    sidecar=sc, gate=gate, approval_kb_id=message.approval_kb_id, peer=message.peer
                )
            )
            match reply:
                case None:
                    return self._stopped()
                case ApprovalRefused():
                    return Refused(refusal=reply.refusal)
                case DriftDetected():
                    await self._stop(
                        RunState.FAILED,
                        StopCode.DRIFT,
                        drift_message(reply.items),
                        drift=reply.items,
                    )
                    return self._stopped()
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

    async def _advance(self, walking: _Walking) -> Step:
        """One step: open the gate due, finish, or run the next phase. Before every
        phase, the gates behind the run must have been passed: a gate whose phase
        passed but which was never opened (a crash between the two) is opened now —
        never walked past. Aborts and a drain are honoured here, at a phase boundary."""
        try:
            due = gate_due(self.sidecar)
        except StopContractViolated as exc:
            await self._stop(RunState.FAILED, exc.stop_code, exc.message, error_id=new_error_id())
            return self._stopped()
        if due is not None:
            await self._open_gate(due)
            return self._stopped()
        phase = next_phase(self.sidecar.phases_passed)
        if phase is None:
            self.sidecar = await self.recorder.move(self.sidecar, RunState.CLOSEOUT_REPORTED)
            return self._stopped()
        if walking.aborts:
            abort, _ = walking.aborts[0]
            await self._aborted(abort)
            return self._stopped()
        if self.draining:
            self.log.info("walk_paused", phase=phase.value, reason="draining")
            return self._stopped()  # still RUNNING: the next start of the runner continues it
        if self.sidecar.mode is Mode.LIVE and await self.deps.kill_switch.engaged():
            await self._stop(RunState.HALTED, StopCode.KILL_SWITCH, "kill switch engaged")
            return self._stopped()
        if not await self._run_phase(phase):
            return self._stopped()
        return None

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
        match reply:
            case PhaseFailed():
                self.recorder.announce(
                    sc, FailedPhase(phase=phase, code=reply.code.value, error_id=reply.error_id)
                )
                await self._stop(
                    RunState.FAILED, reply.code, reply.message, error_id=reply.error_id
                )
                return False
            case PhasePassed():
                pass
            case _:
                assert_never(reply)
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
                match reply:
                    case PhasePassed() if all(
                        p in pins and same_pin(pins[p], v) for p, v in reply.pins.items()
                    ):
                        continue
                    case PhasePassed() | PhaseFailed():
                        pass
                    case _:
                        assert_never(reply)
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
    async def _answer_abort(self, message: Abort) -> SupervisorReply:
        """Abort the run as it stands (no walk in progress)."""
        state = self.sidecar.state
        if self.aborted:
            return self._stopped()  # this supervisor aborted it: the same answer again
        if state not in ABORTABLE:
            return refused(
                code=RunNotAbortable.code,
                message=f"run is {state}; only a paused run or one rolling back can be aborted",
            )
        try:
            await self._aborted(message)
        except RunChanged as exc:
            return await self._refused(exc, None)
        return self._stopped()

    async def _aborted(self, abort: Abort) -> None:
        why = f"aborted by {abort.by}: {abort.reason}"
        await self._stop(RunState.ABORTED, StopCode.OPERATOR_ABORT, why, reason=why)
        self.aborted = self.sidecar.state is RunState.ABORTED

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
