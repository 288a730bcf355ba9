"""One actor per phase: runs the phase body, writes the phase doc, replies typed.

A body that raises a ``CutterError`` ends the run cleanly with its stop code.
Anything else is a bug: it propagates, the actor fails, and its supervisor
hears of it as ``ChildFailed`` (the asker as ``ActorCrashed``).
"""

from __future__ import annotations

from actors import Actor, Context
from cutter.core.errors import CutterError, PhaseStop, StopCode, new_error_id
from cutter.core.kbdocs import PhaseDoc, phase_doc_id
from cutter.core.route import PHASES, Phase
from cutter.walk.messages import PhaseFailed, PhasePassed, PhaseReply, RunPhase
from cutter.walk.phases import PhaseContext, Services, bodies_for


class PhaseActor(Actor[RunPhase, PhaseReply]):
    def __init__(self, phase: Phase, services: Services) -> None:
        self.phase = phase
        self.services = services

    async def receive(self, message: RunPhase, ctx: Context) -> PhaseReply:
        sidecar = message.sidecar
        try:
            output = await bodies_for(sidecar)[self.phase](
                PhaseContext(sidecar, self.services, replay=message.replay)
            )
        except CutterError as exc:
            error_id = new_error_id()
            code = exc.stop_code if isinstance(exc, PhaseStop) else StopCode.PHASE_FAILED
            ctx.log.warning(
                "phase_body_stopped",
                run_id=sidecar.run_id,
                phase=self.phase.value,
                code=code.value,
                error_id=error_id,
                exc_info=True,
            )
            return PhaseFailed(phase=self.phase, code=code, message=exc.message, error_id=error_id)
        if message.replay:
            return PhasePassed(phase=self.phase, pins=output.pins, kb_id=None)
        ordinal = PHASES.index(self.phase) + 1
        kb_id = phase_doc_id(sidecar.run_id, self.phase, ordinal)
        await self.services.kb.put(
            kb_id,
            PhaseDoc(
                run_id=sidecar.run_id,
                phase=self.phase,
                ordinal=ordinal,
                mode=sidecar.mode,
                passed_at=self.services.clock(),
                pins_added=output.pins,
                note=output.note,
                candidates=output.candidates,
                manifest=output.manifest,
                restore_plan=output.restore_plan,
            ),
        )
        return PhasePassed(phase=self.phase, pins=output.pins, kb_id=kb_id)
