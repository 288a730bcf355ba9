"""actors: spawning, names, orderly and hard stop, and ActorSystem shutdown."""

from __future__ import annotations

from typing import TypeAlias

import anyio
import pytest
from structlog.testing import capture_logs

from actors import Actor, ActorCrashed, ActorRef, ActorStopped, ActorSystem, Context

pytestmark = pytest.mark.anyio


class Echo(Actor[str, str]):
    async def receive(self, message: str, ctx: Context) -> str:
        return message


# -- spawn --------------------------------------------------------------------------------


class SlowStarter(Actor[str, str]):
    def __init__(self) -> None:
        self.ready = False

    async def started(self, ctx: Context) -> None:
        for _ in range(5):  # yield to the scheduler: spawn must still wait for us
            await anyio.lowlevel.checkpoint()
        await ctx.spawn(Echo(), "helper")
        self.ready = True

    async def receive(self, message: str, ctx: Context) -> str:
        return f"{ctx.name} ready={self.ready} children={sorted(ctx.children)}"


async def test_spawn_returns_only_after_started_ran() -> None:
    actor = SlowStarter()
    with capture_logs() as logs:
        async with ActorSystem("app") as system:
            ref = await system.spawn(actor, "slow")
            assert actor.ready
            assert ref.name == "app/slow"
            assert await ref.ask("?", timeout=5) == "app/slow ready=True children=['helper']"
    started = [e["actor"] for e in logs if e["event"] == "actor_started"]
    assert started == ["app/slow/helper", "app/slow"]


async def test_started_raising_makes_spawn_raise_actor_crashed() -> None:
    class Broken(Actor[str, str]):
        async def started(self, ctx: Context) -> None:
            await ctx.spawn(Echo(), "orphan-to-be")
            raise OSError("no database")

        async def receive(self, message: str, ctx: Context) -> str:
            raise AssertionError("never started")

    with capture_logs() as logs:
        async with ActorSystem() as system:
            with pytest.raises(ActorCrashed) as info:
                await system.spawn(Broken(), "broken")
            assert info.value.error_type == "OSError"
            ref = await system.spawn(Echo(), "broken")  # the name is free again
            assert await ref.ask("hi", timeout=5) == "hi"
    [failed] = [e for e in logs if e["event"] == "actor_failed"]
    assert failed["error_id"] == info.value.error_id
    stopped = [e["actor"] for e in logs if e["event"] == "actor_stopped"]
    assert stopped[:2] == ["system/broken/orphan-to-be", "system/broken"]
    assert system.failures == []  # the spawner was told directly


class Spawner(Actor[str, str]):
    async def receive(self, message: str, ctx: Context) -> str:
        try:
            await ctx.spawn(Echo(), message)
        except ValueError as exc:
            return f"ValueError: {exc}"
        return "spawned"


async def test_duplicate_live_child_name_raises_value_error() -> None:
    async with ActorSystem() as system:
        parent = await system.spawn(Spawner(), "parent")
        assert await parent.ask("kid", timeout=5) == "spawned"
        reply = await parent.ask("kid", timeout=5)
        assert reply.startswith("ValueError: ")
        assert "kid" in reply
        assert await parent.ask("other", timeout=5) == "spawned"
        with pytest.raises(ValueError, match="parent"):
            await system.spawn(Echo(), "parent")
        with pytest.raises(ValueError, match="'/'"):
            await system.spawn(Echo(), "a/b")


async def test_name_is_reusable_once_the_child_stopped() -> None:
    async with ActorSystem() as system:
        first = await system.spawn(Echo(), "solo")
        await first.stop()
        second = await system.spawn(Echo(), "solo")
        assert second is not first
        assert await second.ask("again", timeout=5) == "again"


# -- stop ---------------------------------------------------------------------------------


async def test_tell_and_ask_after_stop_raise_actor_stopped() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Echo(), "echo")
        await ref.stop()
        assert ref.stopped
        with anyio.fail_after(1):
            with pytest.raises(ActorStopped) as info:
                await ref.tell("late")
            assert info.value.name == "system/echo"
            with pytest.raises(ActorStopped):
                await ref.ask("late", timeout=60)
            await ref.stop()  # idempotent: returns at once


class Journal(Actor[str, None]):
    """Handles messages, blocking on `gate` for "hold"; records everything in `log`."""

    def __init__(self, log: list[str], gate: anyio.Event | None = None) -> None:
        self.log = log
        self.gate = gate
        self.entered = anyio.Event()

    async def receive(self, message: str, ctx: Context) -> None:
        if message == "hold":
            assert self.gate is not None
            self.entered.set()
            await self.gate.wait()
        self.log.append(message)

    async def stopping(self, ctx: Context) -> None:
        self.log.append(f"stopping {ctx.name}")


async def test_orderly_stop_handles_queued_messages_first() -> None:
    log: list[str] = []
    gate = anyio.Event()
    actor = Journal(log, gate)
    async with ActorSystem() as system:
        ref = await system.spawn(actor, "journal")
        await ref.tell("hold")
        await actor.entered.wait()
        for n in range(5):
            await ref.tell(f"queued {n}")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.stop)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ActorStopped):
                await ref.tell("too late")  # the mailbox is closed while it drains
            assert not ref.stopped
            gate.set()
        assert ref.stopped
    queued = [f"queued {n}" for n in range(5)]
    assert log == ["hold", *queued, "stopping system/journal"]


Subtree: TypeAlias = "dict[str, Subtree]"


class Tree(Actor[str, None]):
    """Spawns the given subtree in `started`; records its `stopping` in the shared log."""

    def __init__(self, log: list[str], subtree: Subtree) -> None:
        self.log = log
        self.subtree = subtree

    async def started(self, ctx: Context) -> None:
        for name, grandchildren in self.subtree.items():
            await ctx.spawn(Tree(self.log, grandchildren), name)

    async def receive(self, message: str, ctx: Context) -> None:
        return None

    async def stopping(self, ctx: Context) -> None:
        assert ctx.children == {}, "children must be gone before the parent's stopping"
        self.log.append(ctx.name.removeprefix("system/"))


async def test_stop_stops_children_depth_first_before_the_parent() -> None:
    log: list[str] = []
    with capture_logs() as logs:
        async with ActorSystem() as system:
            root = await system.spawn(Tree(log, {"a": {"a1": {}, "a2": {}}, "b": {}}), "root")
            await root.stop()
            assert log == ["root/b", "root/a/a2", "root/a/a1", "root/a", "root"]
    stopped = [e["actor"] for e in logs if e["event"] == "actor_stopped"]
    assert [name.removeprefix("system/") for name in stopped] == log


async def test_stop_from_inside_receive_finishes_after_the_current_message() -> None:
    class Quitter(Actor[str, str]):
        async def receive(self, message: str, ctx: Context) -> str:
            await ctx.ref.stop()  # must not deadlock waiting for itself
            return "bye"

    async with ActorSystem() as system:
        ref = await system.spawn(Quitter(), "quitter")
        with anyio.fail_after(5):
            assert await ref.ask("quit", timeout=5) == "bye"
            await ref.stop()
        assert ref.stopped


class Stuck(Actor[str, str]):
    """Never finishes a message; counts its `stopping` calls."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.stopping_calls = 0

    async def receive(self, message: str, ctx: Context) -> str:
        self.entered.set()
        await anyio.Event().wait()  # never set
        raise AssertionError("unreachable")

    async def stopping(self, ctx: Context) -> None:
        self.stopping_calls += 1


async def test_stop_past_its_timeout_cancels_and_answers_the_pending_ask() -> None:
    stuck = Stuck()
    async with ActorSystem() as system:
        ref: ActorRef[str, str] = await system.spawn(stuck, "stuck")
        outcome: list[BaseException] = []

        async def ask() -> None:
            try:
                await ref.ask("hang", timeout=60)
            except ActorStopped as exc:
                outcome.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await stuck.entered.wait()
                await ref.stop(timeout=0.05)
        assert ref.stopped
        assert len(outcome) == 1
        assert stuck.stopping_calls == 1  # still runs, under a shielded deadline


async def test_system_exit_stops_everything_and_never_hangs() -> None:
    log: list[str] = []
    stuck = Stuck()
    with capture_logs() as logs, anyio.fail_after(5):
        async with ActorSystem(stop_timeout=0.1) as system:
            stuck_ref = await system.spawn(stuck, "stuck")
            calm = await system.spawn(Tree(log, {"child": {}}), "calm")
            await stuck_ref.tell("hang")
            await stuck.entered.wait()
        assert stuck_ref.stopped
        assert calm.stopped
        with pytest.raises(ActorStopped):
            await system.spawn(Echo(), "after-exit")
    assert log == ["calm/child", "calm"]  # last spawned stops first, orderly
    reasons = {e["actor"]: e["reason"] for e in logs if e["event"] == "actor_stopped"}
    assert reasons == {
        "system/calm/child": "stopped",
        "system/calm": "stopped",
        "system/stuck": "cancelled",
    }
    assert stuck.stopping_calls == 1


async def test_an_error_of_the_body_leaves_the_system_unwrapped() -> None:
    refs: list[ActorRef[str, str]] = []

    async def body() -> None:
        async with ActorSystem("s") as system:
            refs.append(await system.spawn(Echo(), "echo"))
            raise LookupError("the caller's own error")

    with pytest.raises(LookupError) as caught:
        await body()
    assert type(caught.value) is LookupError  # not an ExceptionGroup
    assert refs[0].stopped
