"""actors: tell ordering, typed ask replies, ask timeouts and mailbox back-pressure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, assert_type

import anyio
import pytest
from structlog.testing import capture_logs

from actors import Actor, ActorRef, ActorSystem, AskTimeout, Context

pytestmark = pytest.mark.anyio


# -- tell ordering ------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    n: int


@dataclass(frozen=True)
class Snapshot:
    pass


class Recorder(Actor[Record | Snapshot, list[int]]):
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def receive(self, message: Record | Snapshot, ctx: Context) -> list[int]:
        if isinstance(message, Snapshot):
            return list(self.seen)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await anyio.lowlevel.checkpoint()  # give a concurrent handler a chance to interleave
        self.seen.append(message.n)
        self.in_flight -= 1
        return []


async def test_tell_is_handled_one_at_a_time_in_order() -> None:
    recorder = Recorder()
    async with ActorSystem() as system:
        ref = await system.spawn(recorder, "recorder")
        for n in range(40):  # more than MAILBOX_SIZE: senders also wait their turn
            await ref.tell(Record(n))
        seen = await ref.ask(Snapshot(), timeout=5)
    assert seen == list(range(40))
    assert recorder.max_in_flight == 1


# -- typed ask ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Add:
    a: int
    b: int


class Adder(Actor[Add, int]):
    async def receive(self, message: Add, ctx: Context) -> int:
        return message.a + message.b


async def test_ask_returns_receive_value() -> None:
    async with ActorSystem() as system:
        ref: ActorRef[Add, int] = await system.spawn(Adder(), "adder")
        result = await ref.ask(Add(2, 3), timeout=5)
        assert_type(result, int)
        assert result == 5
        assert await ref.ask(Add(-1, 1), timeout=5) == 0


# -- ask timeout --------------------------------------------------------------------------


class Gated(Actor[str, str]):
    """Replies to "wait" only once `gate` is set; replies to anything else at once."""

    def __init__(self, gate: anyio.Event) -> None:
        self.gate = gate
        self.entered = anyio.Event()
        self.finished: list[str] = []

    async def receive(self, message: str, ctx: Context) -> str:
        if message == "wait":
            self.entered.set()
            await self.gate.wait()
        self.finished.append(message)
        return f"done {message}"


async def test_ask_timeout_then_late_reply_is_dropped() -> None:
    gate = anyio.Event()
    actor = Gated(gate)
    with capture_logs() as logs:
        async with ActorSystem() as system:
            ref = await system.spawn(actor, "gated")
            with pytest.raises(AskTimeout) as info:
                await ref.ask("wait", timeout=0.05)
            assert info.value.name == "system/gated"
            assert info.value.timeout == 0.05

            gate.set()  # the handler now finishes and replies to an asker that is gone
            assert await ref.ask("ping", timeout=5) == "done ping"
            assert actor.finished == ["wait", "ping"]
            assert not ref.stopped
    assert [e for e in logs if e["event"] == "actor_failed"] == []


async def test_ask_timeout_covers_waiting_for_mailbox_room() -> None:
    gate = anyio.Event()

    class Tiny(Gated):
        mailbox_size: ClassVar[int] = 1

    actor = Tiny(gate)
    async with ActorSystem() as system:
        ref = await system.spawn(actor, "tiny")
        await ref.tell("wait")
        await actor.entered.wait()
        await ref.tell("queued")  # fills the only slot
        with pytest.raises(AskTimeout):
            await ref.ask("no room", timeout=0.05)
        gate.set()
        assert await ref.ask("ping", timeout=5) == "done ping"
    assert actor.finished == ["wait", "queued", "ping"]  # the timed-out ask never got in


# -- back-pressure ------------------------------------------------------------------------


async def test_full_mailbox_makes_tell_wait_until_the_actor_takes_one() -> None:
    gate = anyio.Event()

    class OneSlot(Gated):
        mailbox_size: ClassVar[int] = 1

    actor = OneSlot(gate)
    third_sent = anyio.Event()
    async with ActorSystem() as system:
        ref = await system.spawn(actor, "one-slot")
        await ref.tell("wait")
        await actor.entered.wait()  # the actor holds message 1 ...
        await ref.tell("second")  # ... message 2 fills the mailbox

        async def send_third() -> None:
            await ref.tell("third")
            third_sent.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_third)
            await anyio.wait_all_tasks_blocked()
            assert not third_sent.is_set(), "tell should wait while the mailbox is full"
            gate.set()  # the actor finishes message 1 and takes message 2: room for 3
            with anyio.fail_after(5):
                await third_sent.wait()
        await ref.stop()
    assert actor.finished == ["wait", "second", "third"]


async def test_a_cancelled_ask_drops_its_reply_and_the_actor_serves_on() -> None:
    gate = anyio.Event()
    actor = Gated(gate)
    with capture_logs() as logs:
        async with ActorSystem() as system:
            ref = await system.spawn(actor, "gated")
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def cancel_once_handling() -> None:
                        await actor.entered.wait()
                        scope.cancel()

                    tg.start_soon(cancel_once_handling)
                    await ref.ask("wait", timeout=5)
            assert scope.cancelled_caught

            gate.set()  # the reply now goes to an asker that was cancelled
            assert await ref.ask("ping", timeout=5) == "done ping"
            assert actor.finished == ["wait", "ping"]
    assert [e for e in logs if e["event"] == "actor_failed"] == []
