"""Runner.drain() and abort() of a walking run, in process on the embedded stores.

A phase is held mid-way by a port that waits on an ``anyio.Event`` (a blocked
``sources.current`` holds ``source_pin``; a blocked ``ledger.append`` holds
``leg_b_record``), so "while a walk is in a phase" is a fact the test
arranges, not a race it hopes to win: drain or abort, then release the phase,
then look at what the walk did at its next boundary.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup
from structlog.testing import capture_logs

import cutter.core.mode
from cutter import Mode, RunState, StopCode
from cutter.core.errors import ShuttingDown
from cutter.core.ledger import CutEnvelope, LedgerEntry, LedgerEnvelope, RollbackEnvelope
from cutter.core.records import IUState, SourceVersion
from cutter.core.route import PHASES, Gate, Phase
from cutter.core.sidecar import Sidecar
from cutter.stores.memory.target import InMemoryIUStore, InMemoryLedger, InMemorySources
from tests._harness import (
    DOC_ID,
    OLD_ROW,
    OPERATOR,
    SD_ID,
    SV_ID,
    Rig,
    build_runner,
    seed_discoverer,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio


class Hold:
    """Holds the next call it is armed for until released: a phase caught mid-way."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = anyio.Event()
        self.release = anyio.Event()

    def arm(self) -> None:
        self.armed = True

    async def point(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            await self.release.wait()


class HeldSources(InMemorySources):
    def __init__(self, hold: Hold) -> None:
        super().__init__()
        self.hold = hold

    async def current(self, doc_id: str) -> SourceVersion:
        await self.hold.point()
        return await super().current(doc_id)


class HeldLedger(InMemoryLedger):
    def __init__(self, hold: Hold) -> None:
        super().__init__()
        self.hold = hold

    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        await self.hold.point()
        return await super().append(envelope)


def held_rig(tmp_path: Path, hold: Hold, *, at: str = "source_pin", old_rows: bool = False) -> Rig:
    """A rig whose phase ``at`` can be held by ``hold``: ``source_pin`` (the run's first
    ``sources.current``) or ``leg_b_record`` (``ledger.append``, which a live run's
    leg B is the first to call; a dry run's goes to its sandbox)."""
    disc = seed_discoverer()
    sources = HeldSources(hold if at == "source_pin" else Hold())
    sources.seed(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    ledger = HeldLedger(hold if at == "leg_b_record" else Hold())
    store = InMemoryIUStore([OLD_ROW] if old_rows else [])
    return build_runner(tmp_path, disc=disc, sources=sources, ledger=ledger, store=store)


async def walk_in_background(
    tg: TaskGroup, results: list[Sidecar], rig: Rig, run_id: str | None, **kw: object
) -> None:
    """Start ``cut`` (run_id None) or ``resume`` in the task group; its sidecar lands in results."""

    async def walk() -> None:
        if run_id is None:
            results.append(await rig.runner.cut(DOC_ID, started_by=OPERATOR, **kw))  # type: ignore[arg-type]
        else:
            results.append(await rig.runner.resume(run_id, **kw))  # type: ignore[arg-type]

    tg.start_soon(walk)


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)


class TestDrain:
    async def test_a_walk_in_a_phase_stops_at_the_next_boundary_still_running(
        self, tmp_path: Path
    ) -> None:
        hold = Hold()
        rig = held_rig(tmp_path, hold)
        hold.arm()
        results: list[Sidecar] = []
        with capture_logs() as logs:
            async with rig.runner, anyio.create_task_group() as tg:
                await walk_in_background(tg, results, rig, None)
                await hold.entered.wait()  # source_pin is running
                await rig.runner.drain()
                assert rig.runner.draining
                hold.release.set()
        [paused] = results
        assert paused.state is RunState.RUNNING
        assert paused.stop_code is None
        # the phase it was in finished and was persisted; nothing after it ran
        assert paused.phases_passed == (Phase.SOURCE_PIN,)
        assert Phase.SOURCE_PIN in paused.phase_docs
        assert await rig.run_store.load(paused.run_id) == paused
        assert [e["phase"] for e in logs if e["event"] == "walk_paused"] == ["mark"]
        assert not [e for e in logs if e["event"] == "phase_started" and e["phase"] != "source_pin"]

        # a new runner on the same state dir continues it from there to SG_1
        fresh = rig.reopen()
        async with fresh.runner:
            [recovered] = await fresh.runner.recover()
            assert recovered.run_id == paused.run_id
            assert recovered.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert recovered.phases_passed == PHASES[:5]
            assert recovered.pending_gate is not None
            assert recovered.pending_gate.gate is Gate.SG_1
            assert recovered.pins.items() >= paused.pins.items()  # pins are write-once
            # nothing is left to recover once it waits at the gate
            assert await fresh.runner.recover() == []
            done = await fresh.runner.resume(
                recovered.run_id, await write_sg1_approval(fresh, recovered.run_id)
            )
            done = await fresh.runner.resume(
                done.run_id, await write_sg2_approval(fresh, done.run_id)
            )
        assert done.state is RunState.CLOSEOUT_REPORTED
        assert done.phases_passed == PHASES

    async def test_the_recovered_run_ends_as_an_uninterrupted_one(self, tmp_path: Path) -> None:
        hold = Hold()
        rig = held_rig(tmp_path / "drained", hold)
        hold.arm()
        results: list[Sidecar] = []
        async with rig.runner, anyio.create_task_group() as tg:
            await walk_in_background(tg, results, rig, None)
            await hold.entered.wait()
            await rig.runner.drain()
            hold.release.set()
        fresh = rig.reopen()
        async with fresh.runner:
            [recovered] = await fresh.runner.recover()

        straight = build_runner(tmp_path / "straight")
        async with straight.runner:
            reference = await straight.runner.cut(DOC_ID, started_by=OPERATOR)
        assert recovered.state is reference.state
        assert recovered.phases_passed == reference.phases_passed
        assert recovered.pins == reference.pins

    async def test_a_live_walk_drained_after_leg_a_is_continued_without_writing_twice(
        self, tmp_path: Path, live: None
    ) -> None:
        hold = Hold()
        rig = held_rig(tmp_path, hold, at="leg_b_record", old_rows=True)
        async with rig.runner:
            at_sg1 = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sg1 = await write_sg1_approval(rig, at_sg1.run_id)
            hold.arm()
            results: list[Sidecar] = []
            async with anyio.create_task_group() as tg:
                await walk_in_background(tg, results, rig, at_sg1.run_id, approval_kb_id=sg1)
                await hold.entered.wait()  # leg_b_record is appending to the ledger
                await rig.runner.drain()
                hold.release.set()
        [paused] = results
        assert paused.state is RunState.RUNNING
        assert paused.phases_passed == PHASES[:8]  # up to and including leg_b_record
        rows_at_pause = await rig.store.rows(DOC_ID)
        ledger_at_pause = await rig.ledger.entries()
        assert len(rows_at_pause) == 13  # the old active row and 12 staged
        assert [type(e.envelope) for e in ledger_at_pause] == [CutEnvelope]

        fresh = rig.reopen()
        async with fresh.runner:
            [at_sg2] = await fresh.runner.recover()
            assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
            assert await rig.store.rows(DOC_ID) == rows_at_pause
            assert await rig.ledger.entries() == ledger_at_pause
            done = await fresh.runner.resume(
                at_sg2.run_id, await write_sg2_approval(fresh, at_sg2.run_id)
            )
        assert done.state is RunState.CLOSEOUT_REPORTED
        states = sorted(r.state for r in await rig.store.rows(DOC_ID))
        assert states == [IUState.ACTIVE] * 12 + [IUState.SUPERSEDED]

    async def test_commands_after_drain_raise_shutting_down_and_change_nothing(
        self, tmp_path: Path, live: None
    ) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            at_sg1 = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sg1 = await write_sg1_approval(rig, at_sg1.run_id)
            before = rig.stored()
            await rig.runner.drain()
            with pytest.raises(ShuttingDown) as info:
                await rig.runner.cut("doc-other", started_by=OPERATOR)
            assert info.value.code == "E_SHUTTING_DOWN"
            with pytest.raises(ShuttingDown):
                await rig.runner.resume(at_sg1.run_id, sg1)
            with pytest.raises(ShuttingDown):
                await rig.runner.abort(at_sg1.run_id, reason="leaving", by=OPERATOR)
            # reads still answer
            assert await rig.runner.status(at_sg1.run_id) == at_sg1
            assert [s.run_id for s in await rig.runner.runs()] == [at_sg1.run_id]
        assert rig.stored() == before
        # the approval was not consumed: a fresh runner may still use it
        fresh = rig.reopen()
        async with fresh.runner:
            at_sg2 = await fresh.runner.resume(at_sg1.run_id, sg1)
        assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION

    async def test_a_batch_after_drain_raises_shutting_down(self, tmp_path: Path) -> None:
        """Like a single cut: one typed refusal a caller can catch as a CutterError,
        not an exception group of one refusal per document."""
        rig = build_runner(tmp_path)
        async with rig.runner:
            await rig.runner.drain()
            with pytest.raises(ShuttingDown):
                await rig.runner.cut_batch([DOC_ID, "doc-other"], started_by=OPERATOR)
            assert await rig.runner.runs() == []


class TestAbortWhileWalking:
    async def _abort_while_held(
        self, rig: Rig, hold: Hold, run_id: str | None, **kw: object
    ) -> tuple[Sidecar, Sidecar]:
        """Hold the walk in a phase, ask for an abort, release: (walk's sidecar, abort's)."""
        walked: list[Sidecar] = []
        aborted: list[Sidecar] = []
        abort_asked = anyio.Event()
        load = rig.run_store.load

        async def load_then_signal(wanted: str) -> Sidecar:
            sidecar = await load(wanted)
            if hold.entered.is_set():
                # abort() registers its request right after this load, before it
                # next yields: once the test wakes, the request is there.
                abort_asked.set()
            return sidecar

        hold.arm()
        async with anyio.create_task_group() as tg:
            await walk_in_background(tg, walked, rig, run_id, **kw)
            await hold.entered.wait()
            target = run_id or (await rig.runner.runs())[0].run_id
            rig.run_store.load = load_then_signal  # type: ignore[method-assign]

            async def abort() -> None:
                aborted.append(await rig.runner.abort(target, reason="wrong document", by="op-z"))

            tg.start_soon(abort)
            await abort_asked.wait()
            rig.run_store.load = load  # type: ignore[method-assign]
            hold.release.set()
        return walked[0], aborted[0]

    async def test_a_dry_walk_ends_aborted_at_the_next_boundary(self, tmp_path: Path) -> None:
        hold = Hold()
        rig = held_rig(tmp_path, hold)
        async with rig.runner:
            with capture_logs() as logs:
                walked, aborted = await self._abort_while_held(rig, hold, None)
        assert walked == aborted
        assert aborted.state is RunState.ABORTED
        assert aborted.stop_code == StopCode.OPERATOR_ABORT
        assert aborted.stop is not None
        assert "op-z" in aborted.stop.message
        assert "wrong document" in aborted.stop.message
        assert aborted.phases_passed == (Phase.SOURCE_PIN,)  # the phase in hand finished
        assert await rig.run_store.load(aborted.run_id) == aborted
        started = [e["phase"] for e in logs if e["event"] == "phase_started"]
        assert started == ["source_pin"]
        assert await rig.store.rows(DOC_ID) == []
        assert await rig.ledger.entries() == []

    async def test_a_live_walk_after_leg_a_is_aborted_and_its_rows_rolled_back(
        self, tmp_path: Path, live: None
    ) -> None:
        hold = Hold()
        rig = held_rig(tmp_path, hold, at="leg_b_record", old_rows=True)
        async with rig.runner:
            at_sg1 = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sg1 = await write_sg1_approval(rig, at_sg1.run_id)
            walked, aborted = await self._abort_while_held(
                rig, hold, at_sg1.run_id, approval_kb_id=sg1
            )
            assert await rig.runner.status(at_sg1.run_id) == aborted
        assert walked == aborted
        assert aborted.state is RunState.ABORTED
        assert aborted.stop_code == StopCode.OPERATOR_ABORT
        # leg_b_record was in hand and finished; nothing after it ran
        assert aborted.phases_passed == PHASES[:8]
        # rolled back: the document holds exactly the rows it held before the cut
        assert await rig.store.rows(DOC_ID) == [OLD_ROW]
        assert [type(e.envelope) for e in await rig.ledger.entries()] == [
            CutEnvelope,
            RollbackEnvelope,
        ]
        assert await rig.sources.cut_by(SV_ID) is None

    async def test_two_aborts_of_a_walking_run_both_answer_with_its_end(
        self, tmp_path: Path
    ) -> None:
        """The runner keeps one abort at a time in the supervisor's mailbox; the second
        is answered by the supervisor that aborted the run, or after its segment ended."""
        hold = Hold()
        rig = held_rig(tmp_path, hold)
        walked: list[Sidecar] = []
        aborted: list[Sidecar] = []
        both_asked = anyio.Event()
        load = rig.run_store.load
        loads_while_held = 0

        async def load_then_count(wanted: str) -> Sidecar:
            nonlocal loads_while_held
            sidecar = await load(wanted)
            if hold.entered.is_set():
                # abort() asks the supervisor right after this load, before it yields
                loads_while_held += 1
                if loads_while_held == 2:
                    both_asked.set()
            return sidecar

        hold.arm()
        async with rig.runner, anyio.create_task_group() as tg:
            await walk_in_background(tg, walked, rig, None)
            await hold.entered.wait()
            [run] = await rig.runner.runs()
            rig.run_store.load = load_then_count  # type: ignore[method-assign]

            async def abort(by: str) -> None:
                aborted.append(await rig.runner.abort(run.run_id, reason="wrong document", by=by))

            tg.start_soon(abort, "op-z")
            tg.start_soon(abort, "op-y")
            await both_asked.wait()
            rig.run_store.load = load  # type: ignore[method-assign]
            hold.release.set()
        [end] = walked
        assert end.state is RunState.ABORTED
        assert end.phases_passed == (Phase.SOURCE_PIN,)
        assert aborted == [end, end]
        assert await rig.run_store.load(end.run_id) == end
