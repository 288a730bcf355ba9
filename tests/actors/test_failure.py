"""actors: failure reporting, ActorCrashed for askers, escalation and isolation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs
from structlog.typing import EventDict

from actors import (
    Actor,
    ActorCrashed,
    ActorError,
    ActorRef,
    ActorStopped,
    ActorSystem,
    ChildFailed,
    Context,
)

pytestmark = pytest.mark.anyio


def failed_events(logs: list[EventDict]) -> list[EventDict]:
    return [e for e in logs if e["event"] == "actor_failed"]


class Worker(Actor[str, str]):
    """Echoes messages; raises ValueError on "boom"; waits for `gate` on "block-then-boom"."""

    def __init__(self, gate: anyio.Event | None = None) -> None:
        self.gate = gate
        self.entered = anyio.Event()

    async def receive(self, message: str, ctx: Context) -> str:
        if message == "boom":
            raise ValueError("bad\nthing " + "x" * 300)
        if message == "block-then-boom":
            assert self.gate is not None
            self.entered.set()
            await self.gate.wait()
            raise ValueError("released")
        return f"echo {message}"


class Supervisor(Actor[str, str]):
    """Spawns children "good" and "bad" (Workers); records what reaches which hook."""

    def __init__(self, escalate: bool = False) -> None:
        self.escalate = escalate
        self.received: list[Any] = []
        self.failures: list[ChildFailed] = []
        self.child_failed = anyio.Event()
        self.still_listed_when_told: list[bool] = []
        self.kids: dict[str, ActorRef[str, str]] = {}

    async def started(self, ctx: Context) -> None:
        for name in ("good", "bad"):
            self.kids[name] = await ctx.spawn(Worker(), name)

    async def receive(self, message: str, ctx: Context) -> str:
        self.received.append(message)
        if message == "break-bad":
            await ctx.children["bad"].tell("boom")
            return "sent"
        return f"supervisor {message}"

    async def on_child_failed(self, failure: ChildFailed, ctx: Context) -> None:
        self.failures.append(failure)
        self.still_listed_when_told.append(failure.child.rsplit("/", 1)[1] in ctx.children)
        self.child_failed.set()
        if self.escalate:
            raise RuntimeError("cannot cope")


async def test_child_failure_reaches_parent_via_on_child_failed_with_logged_error_id() -> None:
    sup = Supervisor()
    with capture_logs() as logs:
        async with ActorSystem() as system:
            parent = await system.spawn(sup, "sup")
            bad = sup.kids["bad"]
            assert await parent.ask("break-bad", timeout=5) == "sent"
            with anyio.fail_after(5):
                await sup.child_failed.wait()
            assert bad.stopped

    [failure] = sup.failures
    assert failure.child == "system/sup/bad"
    assert failure.error_type == "ValueError"
    assert failure.message == ("bad thing " + "x" * 300)[:200]  # one line, truncated
    assert sup.received == ["break-bad"]  # ChildFailed never went to `receive`
    assert sup.still_listed_when_told == [False]  # already gone from ctx.children
    [event] = failed_events(logs)
    assert event["actor"] == "system/sup/bad"
    assert event["error_id"] == failure.error_id
    assert event["error_type"] == "ValueError"
    assert isinstance(event["exc_info"], ValueError)
    assert event["exc_info"].__traceback__ is not None
    assert event["log_level"] == "error"
    assert system.failures == []  # the parent handled it; nothing escalated


async def test_siblings_and_parent_keep_working_after_a_child_fails() -> None:
    sup = Supervisor()
    async with ActorSystem() as system:
        parent = await system.spawn(sup, "sup")
        bystander = await system.spawn(Worker(), "bystander")
        good = sup.kids["good"]
        await parent.ask("break-bad", timeout=5)
        with anyio.fail_after(5):
            await sup.child_failed.wait()
        assert await good.ask("still there?", timeout=5) == "echo still there?"
        assert await parent.ask("and you?", timeout=5) == "supervisor and you?"
        assert await bystander.ask("me too", timeout=5) == "echo me too"
        assert not good.stopped
        assert not parent.stopped


async def test_asker_gets_actor_crashed_at_once_and_queued_asks_do_not_hang() -> None:
    gate = anyio.Event()
    worker = Worker(gate)
    results: dict[str, object] = {}
    with capture_logs() as logs:
        async with ActorSystem() as system:
            ref = await system.spawn(worker, "worker")

            async def ask(key: str, message: str) -> None:
                try:
                    results[key] = await ref.ask(message, timeout=60)  # never the way out
                except ActorError as exc:
                    results[key] = exc

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(ask, "crashing", "block-then-boom")
                    await worker.entered.wait()
                    tg.start_soon(ask, "queued", "hello")
                    await anyio.wait_all_tasks_blocked()  # "hello" is in the mailbox
                    gate.set()

    crashed = results["crashing"]
    assert isinstance(crashed, ActorCrashed)
    assert crashed.name == "system/worker"
    assert crashed.error_type == "ValueError"
    [event] = failed_events(logs)
    assert crashed.error_id == event["error_id"]
    queued = results["queued"]
    assert isinstance(queued, ActorStopped)
    assert queued.name == "system/worker"


async def test_tell_and_ask_to_a_failed_actor_raise_actor_stopped_promptly() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Worker(), "worker")
        with pytest.raises(ActorCrashed):
            await ref.ask("boom", timeout=5)
        with anyio.fail_after(1):
            with pytest.raises(ActorStopped):
                await ref.tell("anyone?")
            with pytest.raises(ActorStopped):
                await ref.ask("anyone?", timeout=60)


async def test_root_failure_is_recorded_in_system_failures() -> None:
    with capture_logs() as logs:
        async with ActorSystem("app") as system:
            ref = await system.spawn(Worker(), "root")
            with pytest.raises(ActorCrashed):
                await ref.ask("boom", timeout=5)
            await ref.stop()  # returns at once: it has already stopped
            assert ref.stopped
            [failure] = system.failures  # recorded by the time it counts as stopped
    assert failure.child == "app/root"
    assert failure.error_type == "ValueError"
    [event] = failed_events(logs)
    assert failure.error_id == event["error_id"]


async def test_on_child_failed_raising_escalates_to_the_grandparent() -> None:
    sup = Supervisor(escalate=True)
    with capture_logs() as logs:
        async with ActorSystem() as system:
            parent = await system.spawn(sup, "sup")
            good = sup.kids["good"]
            await parent.tell("break-bad")
            with anyio.fail_after(5):
                while not parent.stopped:
                    await anyio.wait_all_tasks_blocked()
            assert good.stopped  # the failed parent's other children were stopped
            [escalated] = system.failures

    assert escalated.child == "system/sup"
    assert escalated.error_type == "RuntimeError"
    assert escalated.message == "cannot cope"
    events = failed_events(logs)
    assert [e["actor"] for e in events] == ["system/sup/bad", "system/sup"]
    assert events[1]["error_id"] == escalated.error_id
    assert [f.child for f in sup.failures] == ["system/sup/bad"]


async def test_cancellation_is_not_treated_as_failure() -> None:
    class Sleeper(Actor[str, str]):
        async def receive(self, message: str, ctx: Context) -> str:
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

    with capture_logs() as logs:
        async with ActorSystem(stop_timeout=0.05) as system:
            ref = await system.spawn(Sleeper(), "sleeper")
            await ref.tell("zzz")
            await anyio.wait_all_tasks_blocked()
    assert ref.stopped
    assert system.failures == []
    assert failed_events(logs) == []
    [stopped] = [e for e in logs if e["event"] == "actor_stopped"]
    assert stopped["reason"] == "cancelled"
