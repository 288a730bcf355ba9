"""The JSON log: one line per event, filtered at info, transitions always in it."""

from __future__ import annotations

import io
import json

import pytest

from actors import Actor, ActorSystem, Context
from cutter.runtime.logs import configure_json, get_logger

pytestmark = pytest.mark.anyio


class Echo(Actor[str, str]):
    async def receive(self, message: str, ctx: Context) -> str:
        return message


async def test_json_log_keeps_transitions_and_drops_actor_lifecycle_debug_events() -> None:
    stream = io.StringIO()
    configure_json(stream)
    log = get_logger(run_id="run-1")
    async with ActorSystem("t") as system:
        ref = await system.spawn(Echo(), "echo")
        assert await ref.ask("hi", timeout=5) == "hi"
        log.info("run_state_changed", from_state="CREATED", to_state="RUNNING")
        log.debug("detail", n=1)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["level"]) for e in events] == [("run_state_changed", "info")]
    assert events[0]["run_id"] == "run-1"
