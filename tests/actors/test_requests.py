"""actors: a request names its reply type; a reply can be given after `receive` returned."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import pytest

from actors import Actor, ActorCrashed, ActorStopped, ActorSystem, Context, Later, Request

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Wait(Request[str]):
    key: str


@dataclass(frozen=True)
class Release(Request[int]):
    key: str
    value: str


@dataclass(frozen=True)
class Explode(Request[None]):
    pass


class Postponer(Actor[Wait | Release | Explode, object]):
    """Holds each `Wait` open until a `Release` of the same key arrives."""

    def __init__(self) -> None:
        self.waiting: dict[str, Later[str]] = {}

    async def receive(self, message: Wait | Release | Explode, ctx: Context) -> object:
        match message:
            case Wait():
                self.waiting[message.key] = ctx.reply_later(message)
                return "ignored: the reply is given later"
            case Release():
                later = self.waiting.pop(message.key)
                later.reply(message.value)
                return len(self.waiting)
            case Explode():
                raise ValueError("boom")


async def test_a_later_reply_answers_the_asker_after_other_messages() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Postponer(), "p")
        answers: dict[str, str] = {}

        async def wait(key: str) -> None:
            answers[key] = await ref.ask(Wait(key), timeout=5)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "a")
            tg.start_soon(wait, "b")
            await anyio.wait_all_tasks_blocked()
            assert await ref.ask(Release("b", "second"), timeout=5) == 1
            assert await ref.ask(Release("a", "first"), timeout=5) == 0
    assert answers == {"a": "first", "b": "second"}


async def test_a_reply_still_owed_when_the_actor_stops_is_actor_stopped() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Postponer(), "p")
        outcome: list[BaseException] = []

        async def wait() -> None:
            try:
                await ref.ask(Wait("never"), timeout=60)
            except ActorStopped as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await ref.stop()
    assert [type(e) for e in outcome] == [ActorStopped]


async def test_a_reply_still_owed_when_the_actor_fails_is_actor_crashed() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Postponer(), "p")
        outcome: list[BaseException] = []

        async def wait() -> None:
            try:
                await ref.ask(Wait("never"), timeout=60)
            except ActorCrashed as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ActorCrashed):
                await ref.ask(Explode(), timeout=5)
    assert [type(e) for e in outcome] == [ActorCrashed]


class Misuser(Actor[Wait, str]):
    async def receive(self, message: Wait, ctx: Context) -> str:
        try:
            ctx.reply_later(Wait("another request"))
        except RuntimeError as exc:
            return str(exc)
        return "accepted a request it is not handling"


async def test_reply_later_takes_only_the_request_being_handled() -> None:
    async with ActorSystem() as system:
        ref = await system.spawn(Misuser(), "m")
        assert "the request `receive` is handling now" in await ref.ask(Wait("k"), timeout=5)
