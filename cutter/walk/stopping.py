"""The one way a run stops, for the supervisor and the runner alike.

``RunStops.stop`` moves the run through the ``RunRecorder`` (checked, persisted,
logged as ``run_state_changed``) and writes its stop doc. A live run that wrote
rows and ends FAILED, REJECTED or ABORTED goes through ROLLBACK_PENDING first:

1. the run moves to ROLLBACK_PENDING with an ``Undo`` record — the state it ends
   in, the rollback envelope's reason, the change set — before a row is touched;
2. ``rollback`` restores the document's rows from the pre-write backup and
   appends the rollback envelope;
3. the run moves to its end state, ``undo.status`` done.

A crash anywhere in between leaves ROLLBACK_PENDING on disk, and whoever takes
the run next (``resume``, ``abort``, a restart's recovery) finishes it with the
same reason. ``rollback`` itself first looks for this run's rollback envelope:
once it is appended the rows were restored (rollback restores first), so they
are not restored a second time, no second envelope is appended, and only the
entry's anchor is recorded (again). An undo
that fails (the store is down, the backup unreadable) leaves the run in
ROLLBACK_PENDING with the attempt's ``error_id`` in its stop message.

What there is to undo:

- a dry run: nothing (its sandbox is thrown away with the segment);
- a run that has not passed SG_1: nothing (nothing is written before it);
- once leg A pinned its change set: its rows, always — unless the cut is committed;
- a leg A that stopped before pinning it: the rows of its change set (which is
  derived from the run and the manifest) if any were stored — a partial write;
- a committed cut: nothing. The commit point is the source version marked cut by
  the run's change set, the last write of ``lifecycle_enact``. From there the cut
  stands — its IUs live, as SG_2 authorised — and a later stop (``closeout``
  failing, a crash before enact's pins were recorded) ends the run FAILED with a
  message that says the cut stands. Undoing a committed cut would take live rows
  away that nobody authorised taking away.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgspec

from cutter.core.errors import MESSAGE_LIMIT, new_error_id, one_line
from cutter.core.kbdocs import StopDoc, stop_doc_id
from cutter.core.ledger import LedgerEntry, LedgerEnvelope
from cutter.core.mode import Mode
from cutter.core.plan import change_set_id_for
from cutter.core.ports import Ledger, Target
from cutter.core.route import Gate, Pin
from cutter.core.sidecar import Sidecar, StopInfo, Undo, undo_message
from cutter.core.states import UNDONE_ENDS, Rollback, RunState
from cutter.runtime.failpoints import failpoint
from cutter.runtime.logs import Logger
from cutter.walk.phases import Services, restoring, rollback
from cutter.walk.recorder import RunRecorder

COMMITTED = "the cut stands: lifecycle_enact committed it, nothing was undone"


class _Writes(enum.Enum):
    NONE = "none"  # nothing this run wrote is in the target
    UNDO = "undo"  # rows to restore
    COMMITTED = "committed"  # the cut is committed; it stands


class RunStops:
    def __init__(self, recorder: RunRecorder, services: Services, log: Logger) -> None:
        self.recorder = recorder
        self.services = services
        self.log = log

    async def stop(
        self, sidecar: Sidecar, state: RunState, stop: StopInfo, *, reason: str, **changes: Any
    ) -> Sidecar:
        """End ``sidecar`` in ``state`` with ``stop``, undoing its writes first when it
        has any (``reason`` is the rollback envelope's). A run already being undone
        is finished instead, ending ABORTED if an operator aborts it, else as recorded."""
        if sidecar.state is RunState.ROLLBACK_PENDING:
            if state is RunState.ABORTED:
                sidecar = await self._retarget(sidecar, state, stop)
            return await self.finish(sidecar)
        writes, change_set_id, unreadable = _Writes.NONE, "", None
        if state in UNDONE_ENDS:
            try:
                writes, change_set_id = await self._writes(sidecar)
            except Exception as exc:  # the store cannot say: record the undo, decide later
                unreadable = self._failed("rollback_failed", exc)
                writes, change_set_id = _Writes.UNDO, _change_set_of(sidecar)
        if writes is _Writes.COMMITTED:
            stop = _with_suffix(stop, COMMITTED)
        if writes is not _Writes.UNDO:
            after = await self.recorder.move(sidecar, state, stop=stop, **changes)
            await self._stop_doc(after)
            return after
        undo = Undo(
            then=state,
            cause=stop.message,
            reason=one_line(reason),
            change_set_id=change_set_id,
            checked=unreadable is None,
            error_id=unreadable,
        )
        pending = await self.recorder.move(
            sidecar,
            RunState.ROLLBACK_PENDING,
            stop=msgspec.structs.replace(stop, message=undo_message(undo)),
            undo=undo,
            **changes,
        )
        await self._stop_doc(pending)
        failpoint("undo:pending")
        if unreadable is not None:
            return pending  # the store is down: whoever takes the run next decides
        return await self._finish(pending)

    async def finish(self, sidecar: Sidecar) -> Sidecar:
        """Finish undoing a ROLLBACK_PENDING run (a retry); it stays pending if it fails."""
        return await self._finish(sidecar)

    async def _finish(self, sidecar: Sidecar) -> Sidecar:
        undo = sidecar.undo
        if sidecar.state is not RunState.ROLLBACK_PENDING or undo is None:
            raise RuntimeError(f"run {sidecar.run_id} is {sidecar.state}, not being undone")
        writes = _Writes.UNDO
        try:
            if not undo.checked:
                writes, _ = await self._writes(sidecar)
            if writes is _Writes.UNDO:
                # rollback is itself safe to repeat: once this run's rollback entry is
                # in the ledger it restores nothing again and only (re)records its anchor.
                await rollback(
                    _target_for_undo(self.services.target),
                    _view(sidecar, undo),
                    undo.reason,
                    kb=self.services.kb,
                )
                failpoint("undo:recorded")
        except Exception as exc:
            undo = msgspec.structs.replace(undo, error_id=self._failed("rollback_failed", exc))
            after = await self.recorder.amend(
                sidecar, undo=undo, stop=_with_message(sidecar.stop, undo_message(undo))
            )
            await self._stop_doc(after)
            return after
        if writes is not _Writes.UNDO:
            return await self._nothing_to_undo(sidecar, undo, writes)
        done = msgspec.structs.replace(undo, status=Rollback.DONE, error_id=None)
        after = await self.recorder.move(
            sidecar, undo.then, undo=done, stop=_with_message(sidecar.stop, undo_message(done))
        )
        self.log.info(
            "run_rolled_back",
            change_set_id=undo.change_set_id,
            backup_id=str(sidecar.pins[Pin.BACKUP_ID]),
        )
        await self._stop_doc(after)
        return after

    async def _nothing_to_undo(self, sidecar: Sidecar, undo: Undo, writes: _Writes) -> Sidecar:
        """An undo recorded while the store could not be read found nothing to undo."""
        stop = _with_message(sidecar.stop, undo.cause)
        if writes is _Writes.COMMITTED:
            stop = _with_suffix(stop, COMMITTED)
        after = await self.recorder.move(sidecar, undo.then, stop=stop, undo=None)
        await self._stop_doc(after)
        return after

    async def _retarget(self, sidecar: Sidecar, state: RunState, stop: StopInfo) -> Sidecar:
        """An operator aborts a run being undone: it ends ABORTED once undone. The
        rollback keeps its recorded reason, so a retry appends no second envelope."""
        undo = sidecar.undo
        assert undo is not None
        before = _with_message(sidecar.stop, undo.cause)
        cause = f"{stop.message} (it had stopped: {before.code.value}: {before.message})"
        undo = msgspec.structs.replace(undo, then=state, cause=one_line(cause))
        stop = msgspec.structs.replace(
            stop, message=undo_message(undo), error_id=stop.error_id or before.error_id
        )
        return await self.recorder.amend(sidecar, undo=undo, stop=stop)

    async def _writes(self, sidecar: Sidecar) -> tuple[_Writes, str]:
        """What of this run's writes there is to undo, and under which change set."""
        pins = sidecar.pins
        sg1 = sidecar.gate(Gate.SG_1)
        if sidecar.mode is not Mode.LIVE or Pin.BACKUP_ID not in pins:
            return _Writes.NONE, ""
        if sg1 is None or not sg1.satisfied:
            return _Writes.NONE, ""
        change_set_id = _change_set_of(sidecar)
        target = self.services.target
        sg2 = sidecar.gate(Gate.SG_2)
        if sg2 is not None and sg2.satisfied:
            if sidecar.restore is not None:  # a restore stands once its last write is done
                if await restoring.committed(target, sidecar):
                    return _Writes.COMMITTED, change_set_id
            elif await target.sources.cut_by(str(pins[Pin.SOURCE_VERSION_ID])) == change_set_id:
                return _Writes.COMMITTED, change_set_id
        if Pin.CHANGE_SET_ID in pins or await target.ius.change_set(change_set_id):
            return _Writes.UNDO, change_set_id
        return _Writes.NONE, ""

    def _failed(self, event: str, exc: Exception) -> str:
        error_id = new_error_id()
        self.log.error(event, error_id=error_id, error_type=type(exc).__name__, exc_info=exc)
        return error_id

    async def _stop_doc(self, sidecar: Sidecar) -> None:
        stop = sidecar.stop
        assert stop is not None
        await self.services.kb.put(
            stop_doc_id(sidecar.run_id),
            StopDoc(
                run_id=sidecar.run_id,
                doc_id=sidecar.doc_id,
                code=stop.code,
                message=stop.message,
                error_id=stop.error_id,
                at=self.services.clock(),
                rollback=None if sidecar.undo is None else sidecar.undo.status,
            ),
        )


def _change_set_of(sidecar: Sidecar) -> str:
    """Leg A's change set: pinned once it passed, derived the same way before."""
    pinned = sidecar.pins.get(Pin.CHANGE_SET_ID)
    if pinned is not None:
        return str(pinned)
    return change_set_id_for(sidecar.run_id, str(sidecar.pins[Pin.MANIFEST_DIGEST]))


def _view(sidecar: Sidecar, undo: Undo) -> Sidecar:
    """The sidecar as ``rollback`` reads it: with the change set being undone pinned,
    also when leg A stopped before pinning it (never saved)."""
    return msgspec.structs.replace(
        sidecar, pins={**sidecar.pins, Pin.CHANGE_SET_ID: undo.change_set_id}
    )


def _with_message(stop: StopInfo | None, message: str) -> StopInfo:
    assert stop is not None, "a run being undone has a stop"
    return msgspec.structs.replace(stop, message=message)


def _with_suffix(stop: StopInfo, suffix: str) -> StopInfo:
    cause = one_line(stop.message, MESSAGE_LIMIT - len(suffix) - 2)
    return msgspec.structs.replace(stop, message=f"{cause}; {suffix}")


@dataclass(frozen=True, slots=True)
class _UndoLedger:
    """The ledger as ``rollback`` sees it: the ``undo:restored`` failpoint fires when
    rollback reaches its append — the rows restored, the envelope not yet appended."""

    ledger: Ledger

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        failpoint("undo:restored")
        return await self.ledger.append(envelope)

    async def entries(self) -> list[LedgerEntry]:
        return await self.ledger.entries()

    async def at(self, seq: int) -> LedgerEntry | None:
        return await self.ledger.at(seq)

    async def head(self) -> LedgerEntry | None:
        return await self.ledger.head()

    async def find(self, envelope: LedgerEnvelope) -> LedgerEntry | None:
        return await self.ledger.find(envelope)


def _target_for_undo(target: Target) -> Target:
    return Target(sources=target.sources, ius=target.ius, ledger=_UndoLedger(target.ledger))
