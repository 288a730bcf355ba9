"""actors: a hard stop reaches the whole subtree, children first (every actor is a task
of the system's one task group; the tree is the cells')."""

from __future__ import annotations

import anyio
import pytest

from actors import Actor, ActorRef, ActorSystem, Context

pytestmark = pytest.mark.anyio


class Stuck(Actor[str, str]):
    """Spawns ``children`` (each Stuck) in ``started``; never finishes a message."""

    def __init__(self, log: list[str], children: tuple[str, ...] = ()) -> None:
        self.log = log
        self.children = children
        self.entered = anyio.Event()

    async def started(self, ctx: Context) -> None:
        for name in self.children:
            child = await ctx.spawn(Stuck(self.log), name)
            await child.tell("hang")

    async def receive(self, message: str, ctx: Context) -> str:
        self.entered.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def stopping(self, ctx: Context) -> None:
        assert ctx.children == {}, "children must be gone before the parent's stopping"
        self.log.append(ctx.name.removeprefix("system/"))


async def test_a_hard_stop_cancels_the_children_and_ends_them_first() -> None:
    log: list[str] = []
    parent = Stuck(log, ("a", "b"))
    async with ActorSystem() as system:
        ref: ActorRef[str, str] = await system.spawn(parent, "parent")
        children = [ref._cell.child_refs[name] for name in ("a", "b")]
        await ref.tell("hang")
        await parent.entered.wait()
        with anyio.fail_after(5):
            await ref.stop(timeout=0.05)
        assert ref.stopped
        assert all(child.stopped for child in children)
        assert log == ["parent/b", "parent/a", "parent"]


async def test_the_system_end_cancels_a_stuck_subtree_children_first() -> None:
    log: list[str] = []
    parent = Stuck(log, ("a",))
    with anyio.fail_after(5):
        async with ActorSystem(stop_timeout=0.05) as system:
            ref: ActorRef[str, str] = await system.spawn(parent, "parent")
            await ref.tell("hang")
            await parent.entered.wait()
    assert log == ["parent/a", "parent"]
