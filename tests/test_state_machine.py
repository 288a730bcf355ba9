"""The run state machine: the transition table, and the sidecar functions that
are the only way a run's state changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

import cutter.core.mode
from cutter.core.errors import CutterError, StopCode
from cutter.core.mode import Mode
from cutter.core.sidecar import Sidecar, StopInfo, amend, transition
from cutter.core.states import (
    AWAITING,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    RunState,
    check_transition,
)
from tests._harness import DOC_ID, build_runner

S = RunState

# The table as the design draws it (DESIGN.md §3-§5, cutter/core/states.py): the
# happy path through both gates, a phase stop or drift ends FAILED, the kill
# switch HALTS a running run, a paused run may be rejected or aborted.
LEGAL: frozenset[tuple[RunState, RunState]] = frozenset(
    {
        (S.CREATED, S.RUNNING),
        (S.CREATED, S.FAILED),
        (S.RUNNING, S.AWAITING_CUT_AUTHORIZATION),
        (S.RUNNING, S.AWAITING_LIFECYCLE_AUTHORIZATION),
        (S.RUNNING, S.HALTED),
        (S.RUNNING, S.CLOSEOUT_REPORTED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.ABORTED),
        (S.AWAITING_CUT_AUTHORIZATION, S.RUNNING),
        (S.AWAITING_CUT_AUTHORIZATION, S.REJECTED),
        (S.AWAITING_CUT_AUTHORIZATION, S.ABORTED),
        (S.AWAITING_CUT_AUTHORIZATION, S.FAILED),
        (S.AWAITING_LIFECYCLE_AUTHORIZATION, S.RUNNING),
        (S.AWAITING_LIFECYCLE_AUTHORIZATION, S.REJECTED),
        (S.AWAITING_LIFECYCLE_AUTHORIZATION, S.ABORTED),
        (S.AWAITING_LIFECYCLE_AUTHORIZATION, S.FAILED),
        (S.HALTED, S.RUNNING),
        (S.HALTED, S.ABORTED),
        (S.HALTED, S.FAILED),  # e.g. the supervisor crashed while halted
        # A live run that wrote rows ends FAILED, REJECTED or ABORTED only once they are
        # undone; nothing is written before SG_1, so a run waiting there has none.
        (S.RUNNING, S.ROLLBACK_PENDING),
        (S.AWAITING_LIFECYCLE_AUTHORIZATION, S.ROLLBACK_PENDING),
        (S.HALTED, S.ROLLBACK_PENDING),
        (S.ROLLBACK_PENDING, S.FAILED),
        (S.ROLLBACK_PENDING, S.REJECTED),
        (S.ROLLBACK_PENDING, S.ABORTED),
    }
)
ALL_PAIRS = list(itertools.product(RunState, RunState))
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in LEGAL]
T0 = datetime(2026, 5, 20, 9, 0, tzinfo=UTC)


def pair_id(pair: tuple[RunState, RunState]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def sidecar_in(state: RunState) -> Sidecar:
    return Sidecar(
        run_id="run-states",
        doc_id=DOC_ID,
        mode=Mode.DRY_RUN,
        started_by="operator-ann",
        created_at=T0,
        updated_at=T0,
        state=state,
    )


class TestTransitionTable:
    def test_the_table_is_the_designed_one(self) -> None:
        assert set(TRANSITIONS) == set(RunState)
        table = {(s, t) for s, targets in TRANSITIONS.items() for t in targets}
        assert table == LEGAL

    @pytest.mark.parametrize("pair", sorted(LEGAL), ids=pair_id)
    def test_every_legal_edge_is_accepted(self, pair: tuple[RunState, RunState]) -> None:
        check_transition(*pair)

    @pytest.mark.parametrize("pair", ILLEGAL, ids=pair_id)
    def test_every_other_pair_raises(self, pair: tuple[RunState, RunState]) -> None:
        with pytest.raises(IllegalTransition) as caught:
            check_transition(*pair)
        assert (caught.value.source, caught.value.target) == pair
        assert f"{pair[0]} -> {pair[1]}" in str(caught.value)

    def test_no_state_moves_to_itself_or_back_to_created(self) -> None:
        for state in RunState:
            assert state not in TRANSITIONS[state]
            assert S.CREATED not in TRANSITIONS[state]

    def test_terminal_states_have_no_way_out(self) -> None:
        assert {S.CLOSEOUT_REPORTED, S.REJECTED, S.ABORTED, S.FAILED} == TERMINAL
        for state in TERMINAL:
            assert TRANSITIONS[state] == frozenset()
            for target in RunState:
                with pytest.raises(IllegalTransition):
                    check_transition(state, target)

    def test_every_non_terminal_state_can_reach_a_terminal_one(self) -> None:
        for state in set(RunState) - TERMINAL:
            assert TRANSITIONS[state] & TERMINAL, state

    def test_awaiting_states_are_the_two_gates(self) -> None:
        assert {S.AWAITING_CUT_AUTHORIZATION, S.AWAITING_LIFECYCLE_AUTHORIZATION} == AWAITING

    def test_an_illegal_transition_is_a_bug_not_a_stop(self) -> None:
        assert not issubclass(IllegalTransition, CutterError)


class TestSidecarTransition:
    @pytest.mark.parametrize("pair", sorted(LEGAL), ids=pair_id)
    def test_moves_along_a_legal_edge(self, pair: tuple[RunState, RunState]) -> None:
        source, target = pair
        at = T0 + timedelta(seconds=5)
        after = transition(sidecar_in(source), target, at=at)
        assert after.state is target
        assert after.updated_at == at
        assert after.created_at == T0

    @pytest.mark.parametrize("pair", ILLEGAL, ids=pair_id)
    def test_refuses_an_illegal_target_and_changes_nothing(
        self, pair: tuple[RunState, RunState]
    ) -> None:
        source, target = pair
        before = sidecar_in(source)
        encoded = msgspec.json.encode(before)
        with pytest.raises(IllegalTransition):
            transition(before, target, at=T0 + timedelta(seconds=5))
        assert msgspec.json.encode(before) == encoded

    def test_carries_the_changes_it_is_given(self) -> None:
        stop = StopInfo(code=StopCode.APPROVAL_REQUIRED, message="waiting at SG_1")
        after = transition(sidecar_in(S.RUNNING), S.AWAITING_CUT_AUTHORIZATION, at=T0, stop=stop)
        assert after.stop == stop
        assert after.stop_code == "STOP_APPROVAL_REQUIRED"
        resumed = transition(after, S.RUNNING, at=T0, stop=None)
        assert resumed.stop is None

    def test_returns_a_new_sidecar(self) -> None:
        before = sidecar_in(S.CREATED)
        after = transition(before, S.RUNNING, at=T0 + timedelta(seconds=1))
        assert before.state is S.CREATED
        assert after is not before


class TestSidecarAmend:
    @pytest.mark.parametrize("state", list(RunState))
    def test_refuses_a_state_change(self, state: RunState) -> None:
        before = sidecar_in(S.RUNNING)
        with pytest.raises(ValueError, match="transition"):
            amend(before, at=T0, state=state)
        assert before.state is S.RUNNING

    def test_keeps_the_state_and_applies_the_changes(self) -> None:
        before = sidecar_in(S.AWAITING_CUT_AUTHORIZATION)
        at = T0 + timedelta(minutes=3)
        after = amend(before, at=at, batch_id="batch-1")
        assert after.state is S.AWAITING_CUT_AUTHORIZATION
        assert (after.batch_id, after.updated_at) == ("batch-1", at)

    def test_works_in_a_terminal_state_without_leaving_it(self) -> None:
        after = amend(sidecar_in(S.FAILED), at=T0, batch_id="batch-2")
        assert after.state is S.FAILED


class TestTheRunnerStaysOnTheTable:
    @pytest.mark.anyio
    async def test_a_supervisor_crash_while_halted_ends_cleanly(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # When a run's supervisor crashes, the runner ends the run "with a clean
        # stop" (runner._crashed), whatever state it was in. A halted live run
        # whose resume fails to save (say, a full disk) must end cleanly too:
        # FAILED with STOP_PHASE_FAILED, or still HALTED and resumable -- never
        # a raw IllegalTransition out of resume().
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path)
        await rig.kill_switch.engage("maintenance window")
        save = rig.run_store.save
        failures = [OSError("no space left on device")]

        async def save_failing_once(sidecar: Sidecar) -> None:
            if failures:
                raise failures.pop()
            await save(sidecar)

        async with rig.runner:
            halted = await rig.runner.cut(DOC_ID, Mode.LIVE)
            assert halted.state is S.HALTED
            assert halted.stop_code == StopCode.KILL_SWITCH.value
            await rig.kill_switch.release()
            monkeypatch.setattr(rig.run_store, "save", save_failing_once)
            after = await rig.runner.resume(halted.run_id)
        assert not failures, "the save did fail once"
        assert (after.state, after.stop_code) in {
            (S.FAILED, StopCode.PHASE_FAILED.value),
            (S.HALTED, StopCode.KILL_SWITCH.value),
        }
        assert await rig.run_store.load(halted.run_id) == after
