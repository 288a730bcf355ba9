"""actors: the mailbox's waiting senders, and the deadlines the system keeps for asks."""

from __future__ import annotations

from typing import ClassVar

import anyio
import pytest

from actors import Actor, ActorStopped, ActorSystem, AskTimeout, Context

pytestmark = pytest.mark.anyio


class Held(Actor[str, str]):
    """Holds the first message until ``gate`` is set; records what it handled."""

    mailbox_size: ClassVar[int] = 1

    def __init__(self) -> None:
        self.gate = anyio.Event()
        self.entered = anyio.Event()
        self.handled: list[str] = []

    async def receive(self, message: str, ctx: Context) -> str:
        if message == "hold":
            self.entered.set()
            await self.gate.wait()
        self.handled.append(message)
        return f"done {message}"


async def test_senders_waiting_for_room_get_it_in_the_order_they_came() -> None:
    actor = Held()
    async with ActorSystem() as system:
        ref = await system.spawn(actor, "held")
        await ref.tell("hold")
        await actor.entered.wait()
        await ref.tell("queued")  # fills the only slot
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(ref.tell, f"waiting {n}")
                await anyio.wait_all_tasks_blocked()  # each sender waits before the next
            actor.gate.set()
        await ref.stop()
    assert actor.handled == ["hold", "queued", *(f"waiting {n}" for n in range(4))]


async def test_a_sender_still_waiting_for_room_at_stop_gets_actor_stopped() -> None:
    actor = Held()
    refused: list[BaseException] = []
    async with ActorSystem() as system:
        ref = await system.spawn(actor, "held")
        await ref.tell("hold")
        await actor.entered.wait()
        await ref.tell("queued")

        async def late_sender() -> None:
            try:
                await ref.tell("no room")
            except ActorStopped as exc:
                refused.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(late_sender)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(ref.stop)
                await anyio.wait_all_tasks_blocked()
                assert len(refused) == 1, "the waiting sender is refused as the stop begins"
                actor.gate.set()
        assert ref.stopped
    assert actor.handled == ["hold", "queued"]  # what was inside is still handled


async def test_a_cancelled_sender_leaves_its_place_to_the_next() -> None:
    actor = Held()
    async with ActorSystem() as system:
        ref = await system.spawn(actor, "held")
        await ref.tell("hold")
        await actor.entered.wait()
        await ref.tell("queued")
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as first:
                async with anyio.create_task_group() as inner:
                    inner.start_soon(ref.tell, "cancelled")
                    await anyio.wait_all_tasks_blocked()
                    first.cancel()
            tg.start_soon(ref.tell, "after")
            await anyio.wait_all_tasks_blocked()
            actor.gate.set()
        with anyio.fail_after(5):
            assert await ref.ask("last", timeout=5) == "done last"
    assert actor.handled == ["hold", "queued", "after", "last"]


class Silent(Actor[str, str]):
    """Answers nothing until ``gate`` is set."""

    def __init__(self, gate: anyio.Event) -> None:
        self.gate = gate

    async def receive(self, message: str, ctx: Context) -> str:
        await self.gate.wait()
        return message


async def test_a_short_ask_times_out_on_time_behind_a_long_one() -> None:
    gate = anyio.Event()
    async with ActorSystem() as system:
        slow = await system.spawn(Silent(gate), "slow")
        quick = await system.spawn(Silent(gate), "quick")
        async with anyio.create_task_group() as tg:

            async def long_ask() -> None:
                assert await slow.ask("long", timeout=3600) == "long"

            tg.start_soon(long_ask)
            await anyio.wait_all_tasks_blocked()  # the keeper sleeps towards an hour
            with anyio.fail_after(5):  # ... and must wake for the earlier deadline
                with pytest.raises(AskTimeout):
                    await quick.ask("short", timeout=0.05)
            gate.set()
        assert system.deadlines.pending == 0, "an ask answered or given up leaves no deadline"


async def test_answered_and_failed_asks_leave_no_deadline_behind() -> None:
    actor = Held()
    async with ActorSystem() as system:
        ref = await system.spawn(actor, "held")
        for n in range(50):
            assert await ref.ask(f"m{n}", timeout=60) == f"done m{n}"
        assert system.deadlines.pending == 0
        await ref.stop()
        with pytest.raises(ActorStopped):
            await ref.ask("late", timeout=60)
        assert system.deadlines.pending == 0
