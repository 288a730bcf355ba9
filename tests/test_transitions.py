"""A run's transitions reach watchers as typed values from the recorder, never by
reading the log: the same transitions in the same order as the log, whatever the
log is configured to do, and a watcher that falls behind is still dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import pytest
import structlog
from structlog.testing import capture_logs

from cutter.core.errors import SelfApprovalRefused, StopCode
from cutter.core.kbdocs import Decision
from cutter.core.principals import Caller
from cutter.core.protocol import Event, Watch
from cutter.core.route import PHASES, Gate, Phase, Pin
from cutter.core.states import RunState
from cutter.core.transitions import (
    AnyChange,
    ChangedState,
    ClosedGate,
    ConsumedApproval,
    DetectedDrift,
    OpenedGate,
    PassedPhase,
    RefusedApproval,
    StartedPhase,
    Transition,
    Transitions,
)
from cutter.daemon.bus import WATCH_BUFFER, EventBus, Subscription
from cutter.daemon.service import Daemon
from cutter.runtime.logs import TRANSITION_EVENTS
from cutter.walk.runner import Runner
from tests._harness import (
    DOC_ID,
    OPERATOR,
    REVIEWER,
    Rig,
    build_runner,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio


def watched(rig: Rig, sink: Transitions) -> Runner:
    """The rig's runner, publishing its transitions to ``sink``."""
    return Runner(replace(rig.runner.config, transitions=sink))


def waiting(bus: EventBus) -> list[Event]:
    """Every event waiting in the bus's one subscription, taken without waiting."""
    [subscription] = bus.subscribers
    events = []
    while True:
        try:
            events.append(subscription.receive.receive_nowait())
        except anyio.WouldBlock:
            return events


def _subject(name: str, fields: MutableMapping[str, Any]) -> object:
    return fields.get("phase") or fields.get("gate") or fields.get("to_state")


def logged(entries: list[MutableMapping[str, Any]]) -> list[tuple[str, str, object]]:
    return [
        (e["event"], e["run_id"], _subject(e["event"], e))
        for e in entries
        if e["event"] in TRANSITION_EVENTS
    ]


def same_values(events: list[Event], entries: list[MutableMapping[str, Any]]) -> None:
    """Each event's detail is its log entry's key-values (a list joined by commas)."""
    transitions = [e for e in entries if e["event"] in TRANSITION_EVENTS]
    assert len(events) == len(transitions)
    for event, entry in zip(events, transitions, strict=True):
        fields = {k: v for k, v in entry.items() if k not in {"event", "run_id", "log_level"}}
        assert event.detail == {
            k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in fields.items()
        }


def watched_events(events: list[Event]) -> list[tuple[str, str, object]]:
    return [(e.event, e.run_id, _subject(e.event, e.detail)) for e in events]


def full_walk(run_id: str) -> list[tuple[str, str, object]]:
    def phases(ps: tuple[Phase, ...]) -> list[tuple[str, str, object]]:
        out: list[tuple[str, str, object]] = []
        for p in ps:
            out += [("phase_started", run_id, p), ("phase_passed", run_id, p)]
        return out

    def release(gate: Gate) -> list[tuple[str, str, object]]:
        return [
            ("run_state_changed", run_id, "RUNNING"),
            ("approval_consumed", run_id, gate),
            ("gate_closed", run_id, gate),
        ]

    return [
        ("run_state_changed", run_id, "RUNNING"),
        *phases(PHASES[:5]),
        ("run_state_changed", run_id, "AWAITING_CUT_AUTHORIZATION"),
        ("gate_opened", run_id, Gate.SG_1),
        *release(Gate.SG_1),
        *phases(PHASES[5:9]),
        ("run_state_changed", run_id, "AWAITING_LIFECYCLE_AUTHORIZATION"),
        ("gate_opened", run_id, Gate.SG_2),
        *release(Gate.SG_2),
        *phases(PHASES[9:]),
        ("run_state_changed", run_id, "CLOSEOUT_REPORTED"),
    ]


async def test_the_bus_sees_the_logs_transitions_in_the_logs_order(tmp_path: Path) -> None:
    """A walk to SG_1, then through both gates: segment by segment, the watcher's
    events are the log's transition events, one for one, in order, with the same
    key-values (a list as text, as the protocol says)."""
    rig = build_runner(tmp_path)
    bus = EventBus()
    subscription = bus.subscribe(None)
    runner = watched(rig, bus)
    seen: list[Event] = []
    async with runner:
        with capture_logs() as logs:
            sc = await runner.cut(DOC_ID, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
        to_sg1 = waiting(bus)
        assert watched_events(to_sg1) == logged(logs)
        same_values(to_sg1, logs)
        assert watched_events(to_sg1)[-2:] == [
            ("run_state_changed", sc.run_id, "AWAITING_CUT_AUTHORIZATION"),
            ("gate_opened", sc.run_id, Gate.SG_1),
        ]
        seen += to_sg1
        for write in (write_sg1_approval, write_sg2_approval):
            with capture_logs() as logs:
                sc = await runner.resume(sc.run_id, await write(rig, sc.run_id))
            segment = waiting(bus)
            assert watched_events(segment) == logged(logs)
            same_values(segment, logs)
            seen += segment
    bus.unsubscribe(subscription)
    assert sc.state is RunState.CLOSEOUT_REPORTED
    assert watched_events(seen) == full_walk(sc.run_id)
    consumed = [e for e in seen if e.event == "approval_consumed"]
    assert [e.detail["approver"] for e in consumed] == [REVIEWER, REVIEWER]
    assert {e.detail["doc_id"] for e in seen} == {DOC_ID}


def _drop_everything(_: Any, __: str, ___: MutableMapping[str, Any]) -> Any:
    raise structlog.DropEvent


def _errors_only() -> None:
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
    )


def _drops_everything() -> None:
    structlog.configure(processors=[_drop_everything])


def _default_console() -> None:
    structlog.reset_defaults()


@pytest.mark.parametrize(
    "configure_log",
    [
        pytest.param(_drops_everything, id="a-processor-drops-every-event"),
        pytest.param(_errors_only, id="filtered-at-error"),
        pytest.param(_default_console, id="structlog-defaults"),
    ],
)
async def test_watch_receives_every_transition_whatever_the_log_configuration(
    tmp_path: Path, configure_log: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """``watch`` through the daemon, with a log that shows no transition at all (or
    one that renders them its own way): the watcher still gets all of them."""
    configure_log()
    rig = build_runner(tmp_path)
    bus = EventBus()
    runner = watched(rig, bus)
    seen: list[Event] = []
    async with runner, anyio.create_task_group() as jobs:
        daemon = Daemon(runner, rig.kill_switch, bus, jobs, owner="root")

        async def watch() -> None:
            async for event in daemon.watch(Watch(id="w"), Caller("root", "test")):
                seen.append(event)

        jobs.start_soon(watch)
        await anyio.wait_all_tasks_blocked()
        assert len(bus.subscribers) == 1  # watching before the run starts
        sc = await runner.cut(DOC_ID, started_by=OPERATOR)
        sc = await runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        sc = await runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
        await anyio.wait_all_tasks_blocked()  # the watcher took everything waiting
        jobs.cancel_scope.cancel()
    assert sc.state is RunState.CLOSEOUT_REPORTED
    assert watched_events(seen) == full_walk(sc.run_id)
    capsys.readouterr()  # what the default console printed is not this test's business


@pytest.fixture
def no_log() -> None:
    structlog.configure(processors=[_drop_everything])


async def test_the_recorder_publishes_typed_transitions(tmp_path: Path, no_log: None) -> None:
    """The sink gets typed values, not log dicts: a refused approval, a consumed one,
    a closed gate and a drift, each with its fields typed."""
    rig = build_runner(tmp_path)
    got: list[Transition] = []

    class Recording:
        def publish(self, transition: Transition) -> None:
            got.append(transition)

    runner = watched(rig, Recording())
    async with runner:
        sc = await runner.cut(DOC_ID, started_by=OPERATOR)
        own = await write_sg1_approval(rig, sc.run_id, approver=OPERATOR)
        with pytest.raises(SelfApprovalRefused):
            await runner.resume(sc.run_id, own)
        sc = await runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        rig.sources.seed(DOC_ID, rig.disc.source, sv_id="sv-charter-001-v2")
        stopped = await runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
    assert stopped.state is RunState.FAILED
    assert {(t.run_id, t.doc_id) for t in got} == {(sc.run_id, DOC_ID)}
    changes = [t.change for t in got]
    assert changes[0] == ChangedState(
        from_state=RunState.CREATED, to_state=RunState.RUNNING, stop_code=None
    )
    assert changes[1] == StartedPhase(phase=PHASES[0])
    assert isinstance(changes[2], PassedPhase)
    assert changes[2].pins == tuple(sorted(changes[2].pins))
    [opened_sg1, opened_sg2] = [c for c in changes if isinstance(c, OpenedGate)]
    assert (opened_sg1.gate, opened_sg2.gate) == (Gate.SG_1, Gate.SG_2)
    [refused] = [c for c in changes if isinstance(c, RefusedApproval)]
    assert (refused.gate, refused.approval_kb_id) == (Gate.SG_1, own)
    [consumed] = [c for c in changes if isinstance(c, ConsumedApproval)]
    assert (consumed.gate, consumed.approver, consumed.decision, consumed.recovered) == (
        Gate.SG_1,
        REVIEWER,
        Decision.APPROVE,
        False,
    )
    assert [c for c in changes if isinstance(c, ClosedGate)] == [
        ClosedGate(gate=Gate.SG_1, decision=Decision.APPROVE)
    ]
    drift = _after(changes, DetectedDrift)
    assert drift.gate is Gate.SG_2
    assert [d.pin for d in drift.drift] == [Pin.SOURCE_VERSION_ID.value]
    assert changes[-1] == ChangedState(
        from_state=RunState.AWAITING_LIFECYCLE_AUTHORIZATION,
        to_state=RunState.FAILED,
        stop_code=StopCode.DRIFT,
    )


C = TypeVar("C")


def _after(changes: list[AnyChange], kind: type[C]) -> C:
    [found] = [c for c in changes if isinstance(c, kind)]
    return found


def _transition(run_id: str, n: int) -> Transition:
    return Transition(run_id=run_id, doc_id="doc-1", change=StartedPhase(phase=PHASES[n % 9]))


async def test_a_watcher_that_falls_behind_is_dropped_and_the_others_go_on() -> None:
    dropped: list[Subscription] = []
    bus = EventBus(on_drop=dropped.append)
    slow = bus.subscribe(None)
    other_run = bus.subscribe("run-other")
    for n in range(WATCH_BUFFER + 1):  # one more than the slow watcher holds
        bus.publish(_transition("run-a", n))
    assert dropped == [slow]
    assert slow.lagged
    assert bus.subscribers == {other_run}
    backlog = [event async for event in slow.receive]  # ends: its stream was closed
    assert len(backlog) == WATCH_BUFFER
    assert [e.detail["phase"] for e in backlog[:2]] == [PHASES[0].value, PHASES[1].value]
    bus.publish(_transition("run-other", 0))
    assert not other_run.lagged
    [event] = waiting(bus)
    assert (event.event, event.run_id) == ("phase_started", "run-other")
    bus.unsubscribe(slow)
    bus.unsubscribe(other_run)


def test_every_transition_kind_is_a_logged_transition_event() -> None:
    """The typed kinds and the log's list of transition events are one set."""
    kinds = AnyChange.__args__
    assert {k.__struct_config__.tag for k in kinds} == TRANSITION_EVENTS
    assert {msgspec.inspect.type_info(k).tag for k in kinds} == TRANSITION_EVENTS
