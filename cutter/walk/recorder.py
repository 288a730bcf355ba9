"""The single place a run's state changes, is persisted, and is logged.

Every transition of a run goes through ``announce``: it is logged (its event name
and key-values, ``cutter.core.transitions``) and published, as the typed ``Transition``,
to the recorder's sink (the daemon's watchers), in that order — watchers see what
the log says, in the log's order, whatever the log configuration.

Every save is compare-and-save (``cutter.core.run_revision``): the sidecar it saves is
one revision after the one this walk holds, and the store saves it only over that
one. A walker with a stale copy (a second process, a raced resume) is refused by
the store with ``RunChanged`` instead of writing over another walker's progress,
with no read before the write."""

from __future__ import annotations

from typing import Any

from cutter.core.ports import RunStore
from cutter.core.sidecar import ApprovalUse, Sidecar, amend, transition
from cutter.core.states import RunState
from cutter.core.transitions import NO_TRANSITIONS, AnyChange, ChangedState, Transition, Transitions
from cutter.runtime.logs import Logger
from cutter.walk.phases.context import Clock


class RunRecorder:
    def __init__(
        self,
        store: RunStore,
        clock: Clock,
        log: Logger,
        transitions: Transitions = NO_TRANSITIONS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.log = log
        self.transitions = transitions

    def announce(self, sidecar: Sidecar, change: AnyChange) -> None:
        """Log ``change``, a transition of the run ``sidecar``, then publish it to the sink."""
        self.log.log(
            change.level,
            change.event,
            run_id=sidecar.run_id,
            doc_id=sidecar.doc_id,
            **change.fields(),
        )
        self.transitions.publish(
            Transition(run_id=sidecar.run_id, doc_id=sidecar.doc_id, change=change)
        )

    async def move(self, sidecar: Sidecar, target: RunState, **changes: Any) -> Sidecar:
        """Transition (checked), persist, then announce ``run_state_changed``."""
        after = transition(sidecar, target, at=self.clock(), **changes)
        await self.store.save(after)
        self._logged(sidecar, after)
        return after

    async def amend(self, sidecar: Sidecar, **changes: Any) -> Sidecar:
        """Persist a change that keeps the state (pins, phase docs)."""
        after = amend(sidecar, at=self.clock(), **changes)
        await self.store.save(after)
        return after

    async def consume(
        self, sidecar: Sidecar, use: ApprovalUse, target: RunState | None, **changes: Any
    ) -> Sidecar:
        """Consume an approval and persist the run's advance in one store step."""
        at = self.clock()
        if target is None:
            after = amend(sidecar, at=at, **changes)
        else:
            after = transition(sidecar, target, at=at, **changes)
        await self.store.save_consuming(after, use)
        self._logged(sidecar, after)
        return after

    def _logged(self, before: Sidecar, after: Sidecar) -> None:
        if before.state is not after.state:
            stop_code = after.stop.code if after.stop else None
            self.announce(
                after,
                ChangedState(from_state=before.state, to_state=after.state, stop_code=stop_code),
            )
