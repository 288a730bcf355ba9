"""The runner: the API async harnesses, the CLI and the daemon drive runs through.

``cut`` walks a new run to its first stop; ``resume`` continues a paused one with
an approval; both return the run's sidecar. A refused resume raises the typed
``GateRefusal`` that says why and leaves the run as it was.

    async with Runner(config) as runner:
        sidecar = await runner.cut("doc-1")
        sidecar = await runner.resume(sidecar.run_id, approval_kb_id)
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import assert_never

import anyio

from actors import ActorCrashed, ActorError, ActorStopped, ActorSystem
from cutter.core.approvals import GatePolicy
from cutter.core.errors import (
    CorruptRecord,
    DocumentBusy,
    RunNotResumable,
    ShuttingDown,
    StopCode,
    raise_refusal,
)
from cutter.core.ids import (
    check_doc_id,
    check_kb_id,
    check_reason,
    check_run_id,
    check_token,
    new_run_id,
)
from cutter.core.mode import Mode, require_mode_allowed
from cutter.core.ports import (
    Discoverer,
    DocumentLocks,
    GrantProbe,
    KillSwitch,
    KnowledgeBase,
    RunStore,
    Target,
)
from cutter.core.quarantine import RunScan, scan_runs
from cutter.core.restoring import RestoreOrder, SavedBackup
from cutter.core.review import GateReview
from cutter.core.sidecar import Sidecar, StopInfo
from cutter.core.states import AWAITING, RECOVERABLE, TERMINAL, RunState
from cutter.core.transitions import NO_TRANSITIONS, Transitions
from cutter.runtime.logs import get_logger
from cutter.walk.gate_check import PolicyGateVerifier
from cutter.walk.gate_review import gate_review
from cutter.walk.hooks import ProcessHooks
from cutter.walk.locks import InProcessDocumentLocks
from cutter.walk.messages import (
    Abort,
    Drain,
    Refused,
    SupervisorReply,
    Walk,
    WalkStopped,
)
from cutter.walk.phases import Services
from cutter.walk.phases.context import Clock
from cutter.walk.policy_book import default_policy
from cutter.walk.recorder import RunRecorder
from cutter.walk.restore_orders import restore_order, revert_of, saved_backups
from cutter.walk.sandbox import sandbox
from cutter.walk.stopping import RunStops
from cutter.walk.supervisor import RunDeps, RunSupervisor, SupervisorRef

MAX_WALKING = 32
"""Walk segments in flight at once; more wait their turn. A segment in flight holds
a supervisor, its children and their mailboxes (about 200 KiB at its peak), a
paused run only its sidecar. On two cores more segments at once add no speed,
only memory: 1,000 runs started together peaked at 200 KiB each, left behind as
allocator high-water after they paused (``scripts/benchmarks/fleet.py``)."""


async def nothing_to_sync() -> None:
    """``RunnerConfig.durable`` of stores whose every commit is durable."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _RunLock:
    """Serialises a run's segments in this process; dropped when nobody holds it."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


@dataclass(slots=True)
class _Walker:
    """The supervisor of a segment in flight: where an abort or a drain of its run is
    told. At most one ``Abort`` and one ``Drain`` wait in its mailbox at a time, so
    the step the supervisor sends itself never waits for room."""

    ref: SupervisorRef
    aborting: anyio.Event | None = None  # set once the abort in its mailbox is answered
    drained: bool = False

    async def abort(self, command: Abort) -> SupervisorReply | None:
        """Its answer; None when the supervisor ended before it took the abort. The
        abort is in its mailbox before this first yields, unless another is."""
        while self.aborting is not None:
            await self.aborting.wait()
        self.aborting = done = anyio.Event()
        try:
            # Honoured at the walk's next phase boundary: every step is bounded
            # (docs/architecture.md, "A walk segment").
            return await self.ref.ask(command, timeout=math.inf)
        except ActorError:
            return None
        finally:
            self.aborting = None
            done.set()

    async def drain(self) -> None:
        if self.drained:
            return
        self.drained = True
        with suppress(ActorStopped):  # its segment ended: nothing left to pause
            await self.ref.tell(Drain())


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A run a previous process left half-done, and the approval to finish consuming."""

    run_id: str
    state: RunState
    approval_kb_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    target: Target
    kb: KnowledgeBase
    run_store: RunStore
    discoverer: Discoverer
    grants: GrantProbe
    kill_switch: KillSwitch
    policy: GatePolicy = field(default_factory=GatePolicy)
    clock: Clock = utc_now
    phase_timeout: float = 300.0
    locks: DocumentLocks = field(default_factory=InProcessDocumentLocks)
    max_walking: int = MAX_WALKING
    # Awaited before anything is acknowledged (the end of a walk segment, a daemon
    # reply): everything the stores committed so far then survives a power loss. The
    # embedded database syncs its WAL (``cutter.stores.sqlite.database.Database.durable``);
    # stores whose every commit is durable (PostgreSQL, memory) need nothing.
    durable: Callable[[], Awaitable[None]] = nothing_to_sync
    # Where every run's transitions are published as they are logged (the daemon's
    # watchers: ``cutter.daemon.bus.EventBus``); nowhere by default.
    transitions: Transitions = NO_TRANSITIONS
    # The hooks directory (``cutter.runtime.hook_dir``; None: none). The policy's hooks
    # run whatever it is (docs/operations.md, Hooks).
    hooks_dir: Path | None = None


class Runner:
    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self._system: ActorSystem | None = None
        self._locks: dict[str, _RunLock] = {}
        self._walking: anyio.CapacityLimiter | None = None
        self._walkers: dict[str, _Walker] = {}
        self._draining = False

    async def __aenter__(self) -> Runner:
        if self.config.max_walking < 1:
            raise ValueError(f"max_walking must be at least 1, not {self.config.max_walking}")
        self._walking = anyio.CapacityLimiter(self.config.max_walking)
        self._system = ActorSystem("cutter")
        await self._system.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        system, self._system = self._system, None
        if system is not None:
            await system.__aexit__(exc_type, exc, tb)

    # --- the API ------------------------------------------------------------
    async def cut(
        self,
        doc_id: str,
        mode: Mode = Mode.DRY_RUN,
        *,
        started_by: str = "operator",
        batch_id: str | None = None,
        run_id: str | None = None,
        principal: str | None = None,
    ) -> Sidecar:
        """Start a run for ``doc_id`` and walk it to its first stop. ``run_id`` lets a
        caller that must name the run before it exists (the daemon) choose it;
        ``principal`` is who the daemon authenticated for ``started_by``."""
        return await self.start(
            doc_id,
            mode,
            started_by=started_by,
            batch_id=batch_id,
            run_id=run_id,
            principal=principal,
        )

    async def start(
        self,
        doc_id: str,
        mode: Mode = Mode.DRY_RUN,
        *,
        started_by: str = "operator",
        batch_id: str | None = None,
        run_id: str | None = None,
        principal: str | None = None,
        restore: RestoreOrder | None = None,
    ) -> Sidecar:
        """Record a new run and walk it to its first stop: a cut, or with ``restore``
        (from ``restore_order`` or ``revert_order``, which check it) a restore run."""
        sidecar = self._new_run(doc_id, mode, started_by, batch_id, run_id, principal, restore)
        return await self._drive(sidecar, Walk(), new=True)

    async def restore(
        self,
        doc_id: str,
        backup_id: str,
        mode: Mode = Mode.DRY_RUN,
        *,
        started_by: str = "operator",
        run_id: str | None = None,
        principal: str | None = None,
    ) -> Sidecar:
        """Start a restore run putting ``doc_id``'s rows back as backup ``backup_id``
        holds them, and walk it to its first stop (docs/revert.md). A bad, unknown or
        another document's backup is ``BackupUnknown`` and nothing is recorded."""
        require_mode_allowed(mode)
        order = await self.restore_order(doc_id, backup_id)
        return await self.start(
            doc_id, mode, started_by=started_by, run_id=run_id, principal=principal, restore=order
        )

    async def revert(
        self,
        reverted: str,
        mode: Mode = Mode.DRY_RUN,
        *,
        started_by: str = "operator",
        run_id: str | None = None,
        principal: str | None = None,
    ) -> Sidecar:
        """Start a restore run reverting run ``reverted`` (its document's rows back to
        its pre-write backup), walked to its first stop; ``NotRevertible`` or
        ``RevertRefused`` (``cutter.core.revert``) and nothing recorded otherwise."""
        require_mode_allowed(mode)
        doc_id, order = await self.revert_order(reverted)
        return await self.start(
            doc_id, mode, started_by=started_by, run_id=run_id, principal=principal, restore=order
        )

    async def restore_order(self, doc_id: str, backup_id: str) -> RestoreOrder:
        """What ``restore`` would start with, checked (``BackupUnknown``)."""
        return await restore_order(self.config.target, doc_id, backup_id)

    async def revert_order(self, reverted: str) -> tuple[str, RestoreOrder]:
        """The document and the restore ``revert`` would start with, checked."""
        run = await self.status(reverted)
        return run.doc_id, await revert_of(self.config.target, run)

    async def backups(self, doc_id: str) -> list[SavedBackup]:
        """The document's stored backups, oldest first, and the live runs that saved each."""
        return await saved_backups(self.config.target, await self.runs(), doc_id)

    async def open(
        self,
        doc_id: str,
        mode: Mode = Mode.DRY_RUN,
        *,
        started_by: str = "operator",
        run_id: str | None = None,
        principal: str | None = None,
        restore: RestoreOrder | None = None,
    ) -> Sidecar:
        """Record a new run (CREATED) without walking it: the run holds its document
        from now on, or ``DocumentBusy`` names the open run that does and nothing is
        recorded. ``resume`` walks it. The daemon opens a run before it answers a
        start it walks in the background, so that a refusal is the answer."""
        if self._draining:
            raise ShuttingDown()
        sidecar = self._new_run(doc_id, mode, started_by, None, run_id, principal, restore)
        async with self.config.locks.hold(sidecar.doc_id, sidecar.run_id):
            await self.config.run_store.create(sidecar)
        return sidecar

    def _new_run(
        self,
        doc_id: str,
        mode: Mode,
        started_by: str,
        batch_id: str | None,
        run_id: str | None,
        principal: str | None,
        restore: RestoreOrder | None = None,
    ) -> Sidecar:
        require_mode_allowed(mode)
        now = self.config.clock()
        return Sidecar(
            run_id=new_run_id() if run_id is None else check_run_id(run_id),
            doc_id=check_doc_id(doc_id),
            mode=mode,
            started_by=check_token("started_by", started_by),
            batch_id=None if batch_id is None else check_token("batch_id", batch_id),
            started_by_principal=None if principal is None else check_token("principal", principal),
            created_at=now,
            updated_at=now,
            state=RunState.CREATED,
            restore=restore,
        )

    async def cut_batch(
        self, doc_ids: Sequence[str], mode: Mode = Mode.DRY_RUN, *, started_by: str = "operator"
    ) -> list[Sidecar]:
        """One run per document, walked concurrently, each to its own first stop.

        A document named twice, or held by an open run, refuses the batch with
        ``DocumentBusy`` before any run is recorded. A start of one of its documents
        that races the batch refuses that document's run only: the others reach
        their stops, then ``DocumentBusy`` is raised."""
        require_mode_allowed(mode)
        if self._draining:
            raise ShuttingDown()
        for doc_id in doc_ids:
            check_doc_id(doc_id)
        await self._refuse_held(doc_ids)
        batch_id = "batch-" + new_run_id().removeprefix("run-")
        results: dict[int, Sidecar] = {}
        refused: list[DocumentBusy] = []

        async def one(index: int, doc_id: str) -> None:
            try:
                results[index] = await self.cut(
                    doc_id, mode, started_by=started_by, batch_id=batch_id
                )
            except DocumentBusy as exc:  # a start that raced the batch: the others go on
                refused.append(exc)

        async with anyio.create_task_group() as tg:
            for index, doc_id in enumerate(doc_ids):
                tg.start_soon(one, index, doc_id)
        if refused:
            raise refused[0]
        return [results[i] for i in range(len(doc_ids))]

    async def _refuse_held(self, doc_ids: Sequence[str]) -> None:
        """``DocumentBusy`` before anything is written when a batch names a document
        twice or one an open run holds."""
        seen: set[str] = set()
        for doc_id in doc_ids:
            if doc_id in seen:
                raise DocumentBusy(doc_id, "another run of this batch (named twice)")
            seen.add(doc_id)
        for sidecar in await self.runs():
            if sidecar.doc_id in seen and sidecar.state not in TERMINAL:
                raise DocumentBusy(sidecar.doc_id, f"run {sidecar.run_id}")

    async def resume(
        self, run_id: str, approval_kb_id: str | None = None, *, peer: str | None = None
    ) -> Sidecar:
        """Continue a paused run; at a gate, ``approval_kb_id`` names the approval."""
        sidecar = await self.status(run_id)
        require_mode_allowed(sidecar.mode)
        if approval_kb_id is not None:
            check_kb_id(approval_kb_id)
        if sidecar.state in TERMINAL:
            raise RunNotResumable(run_id, sidecar.state.value)
        return await self._drive(sidecar, Walk(approval_kb_id=approval_kb_id, peer=peer))

    async def abort(self, run_id: str, *, reason: str, by: str) -> Sidecar:
        """End a paused run, rolling back a live run's writes.

        Rolling back rewrites production rows, so aborting a live run needs live
        execution enabled, like any other step of it."""
        sidecar = await self.status(run_id)
        require_mode_allowed(sidecar.mode)
        command = Abort(reason=check_reason(reason), by=check_token("by", by))
        walker = self._walkers.get(sidecar.run_id)
        if walker is not None and not self._draining:
            # A walking run: its supervisor ends it at its next phase boundary.
            match await walker.abort(command):
                case None:
                    pass  # its segment ended before the abort came
                case Refused() if self._draining:
                    raise ShuttingDown()  # the walk paused for the drain before the abort came
                case WalkStopped() | Refused() as reply:
                    await self.config.durable()
                    return _walked(sidecar.run_id, reply)
        # A paused run (or one whose segment ended meanwhile): aborted once this call
        # holds it.
        return await self._drive(sidecar, command)

    async def drain(self) -> None:
        """Stop at the next phase boundary: walks pause (still RUNNING) and new
        commands are refused. The next runner on the same stores continues them."""
        self._draining = True
        for walker in list(self._walkers.values()):
            await walker.drain()

    @property
    def draining(self) -> bool:
        return self._draining

    async def recover(self) -> list[Sidecar]:
        """Finish what a previous process left half-done (see ``unfinished``), each run
        to its next stop; paused and halted runs stay as they are."""
        return [await self.resume(w.run_id, w.approval_kb_id) for w in await self.unfinished()]

    async def unfinished(self) -> list[Unfinished]:
        """What a previous process left half-done: runs mid-walk (CREATED, RUNNING),
        continued from their last completed phase; runs whose undo it left
        (ROLLBACK_PENDING), finished; and runs waiting at a gate with
        an approval consumed but not recorded (a crash between the consumption and
        the save of the run's advance), finished with that same approval — never a
        second one."""
        found: list[Unfinished] = []
        scan = await self.scan()
        log = get_logger(component="runner")
        for bad in scan.unreadable:  # quarantined: left as found, the others go on
            log.warning("run_unreadable", run_id=bad.run_id, code=bad.code, reason=bad.reason)
        for sidecar in scan.runs:
            if sidecar.state in RECOVERABLE:
                found.append(Unfinished(sidecar.run_id, sidecar.state))
            elif sidecar.state in AWAITING:
                try:
                    consumed = await self.config.run_store.consumed_for(sidecar.run_id)
                except CorruptRecord as exc:
                    # Whether it consumed an approval cannot be known: no recovery
                    # guesses; the gatekeeper fails closed on the next approval.
                    log.warning(
                        "consumption_unreadable",
                        run_id=sidecar.run_id,
                        code=exc.code,
                        reason=exc.message,
                    )
                    continue
                for kb_id in consumed:
                    if kb_id not in sidecar.approvals_used:
                        found.append(Unfinished(sidecar.run_id, sidecar.state, kb_id))
                        break  # one at a time: the resume records it, a restart the next
        return found

    async def review(self, run_id: str) -> tuple[Sidecar, GateReview]:
        """The run and what its open gate authorises (``RunNotAtGate`` at no gate)."""
        sidecar = await self.status(run_id)
        return sidecar, await gate_review(self._deps(sidecar).services, sidecar)

    async def status(self, run_id: str) -> Sidecar:
        return await self.config.run_store.load(check_run_id(run_id))

    async def runs(self) -> list[Sidecar]:
        """Every run whose sidecar can be read (``scan`` names the others)."""
        return (await self.scan()).runs

    async def scan(self) -> RunScan:
        """Every stored run: the readable sidecars, and apart the runs whose sidecar
        cannot be read, each with the reason (``cutter.core.quarantine``)."""
        return await scan_runs(self.config.run_store)

    # --- driving a segment ----------------------------------------------------
    async def _drive(self, known: Sidecar, command: Walk | Abort, *, new: bool = False) -> Sidecar:
        """Walk one segment of a run, at most ``max_walking`` at once, while holding
        the run and its document; ``new`` runs are created (``RunStore.create``, one
        open run per document) only once the walk holds the document, so a busy
        document leaves no run."""
        if self._system is None or self._walking is None:
            raise RuntimeError("use the runner inside 'async with Runner(...)'")
        if self._draining:
            raise ShuttingDown()
        run_id = known.run_id
        # The walking slot first: whoever holds a run or document lock holds a slot,
        # so a segment waiting for a lock never starves the holder.
        async with self._walking, self._run_lock(run_id):
            if self._draining:  # drained while this segment waited for its turn
                raise ShuttingDown()
            sidecar = await self._walk_segment(self._system, known, command, new=new)
        await self.config.durable()  # what the caller is told survives a power loss
        return sidecar

    @asynccontextmanager
    async def _run_lock(self, run_id: str) -> AsyncIterator[None]:
        entry = self._locks.get(run_id)
        if entry is None:
            entry = self._locks[run_id] = _RunLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[run_id]

    async def _walk_segment(
        self, system: ActorSystem, known: Sidecar, command: Walk | Abort, *, new: bool
    ) -> Sidecar:
        run_id = known.run_id
        async with self.config.locks.hold(known.doc_id, run_id):
            if new:  # the run's claim on its document: DocumentBusy records nothing
                await self.config.run_store.create(known)
            sidecar = await self.config.run_store.load(run_id)
            if (
                isinstance(command, Abort)
                and sidecar.state is RunState.ABORTED
                and known.state is not RunState.ABORTED
            ):
                return sidecar  # the walking segment honoured this abort
            supervisor = RunSupervisor(sidecar, self._deps(sidecar))
            ref = await system.spawn(supervisor, run_id)
            walker = self._walkers[run_id] = _Walker(ref)
            try:
                if self._draining:  # drained while this segment started
                    await walker.drain()
                # No deadline of the runner's own: every step of the walk is bounded
                # (docs/architecture.md, "A walk segment").
                reply = await ref.ask(command, timeout=math.inf)
            except ActorCrashed as exc:
                await ref.stop()
                return await self._crashed(run_id, exc.error_type, exc.error_id)
            finally:
                if self._walkers.get(run_id) is walker:
                    del self._walkers[run_id]
                await ref.stop()
        return _walked(run_id, reply)

    def _deps(self, sidecar: Sidecar) -> RunDeps:
        c = self.config
        target = sandbox(c.target) if sidecar.mode is Mode.DRY_RUN else c.target
        fallback = default_policy(c.policy, owner="-")
        return RunDeps(
            services=Services(
                target=target,
                kb=c.kb,
                discoverer=c.discoverer,
                grants=c.grants,
                clock=c.clock,
                gates=PolicyGateVerifier(kb=c.kb, consumption=c.run_store, fallback=fallback),
                hooks=ProcessHooks(
                    kb=c.kb, directory=c.hooks_dir, clock=c.clock, fallback=fallback
                ),
            ),
            run_store=c.run_store,
            kill_switch=c.kill_switch,
            policy=c.policy,
            phase_timeout=c.phase_timeout,
            transitions=c.transitions,
        )

    async def _crashed(self, run_id: str, error_type: str, error_id: str) -> Sidecar:
        """The supervisor itself failed (a bug): end the run with a clean stop,
        the same way the supervisor stops one (``RunStops``: recorded, logged, a stop
        doc, a live run's writes undone)."""
        sidecar = await self.config.run_store.load(run_id)
        if sidecar.state in TERMINAL:
            return sidecar
        log = get_logger(run_id=run_id, doc_id=sidecar.doc_id)
        stops = RunStops(
            RunRecorder(self.config.run_store, self.config.clock, log, self.config.transitions),
            self._deps(sidecar).services,
            log,
        )
        message = f"run supervisor failed unexpectedly ({error_type})"
        return await stops.stop(
            sidecar,
            RunState.FAILED,
            StopInfo(code=StopCode.PHASE_FAILED, message=message, error_id=error_id),
            reason=f"{StopCode.PHASE_FAILED.value}: {message}",
        )


def _walked(run_id: str, reply: SupervisorReply) -> Sidecar:
    """The run as the supervisor left it, or the typed refusal it answered."""
    match reply:
        case WalkStopped():
            return reply.sidecar
        case Refused():
            raise_refusal(run_id, reply.refusal)
        case _:
            assert_never(reply)
