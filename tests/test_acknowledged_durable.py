"""Nothing is acknowledged before it is durable: ``RunnerConfig.durable`` is awaited
after a walk segment's last write and before the runner returns it, and before the
daemon sends a reply; a barrier that fails fails the acknowledgement."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from cutter.assembly.embedded import embedded_config
from cutter.core.errors import StorageFull
from cutter.core.principals import Caller
from cutter.core.protocol import Error, ListRuns, RunList, SetKillSwitch
from cutter.core.quarantine import UnreadableRun
from cutter.core.run_pages import RunFilter
from cutter.core.states import RunState
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.sqlite.records import SqliteKillSwitch
from cutter.walk.runner import Runner, RunnerConfig

pytestmark = pytest.mark.anyio


class Barriers:
    """A ``durable`` that records, at each call, the state of every stored run."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.seen: list[dict[str, RunState]] = []
        self.fail = False

    async def __call__(self) -> None:
        stored = await self.config.run_store.page("", 100, RunFilter())
        runs = {sc.run_id: sc.state for sc in stored if not isinstance(sc, UnreadableRun)}
        self.seen.append(runs)
        if self.fail:
            raise StorageFull("the test's disk", "No space left on device")


@pytest.fixture
async def config(tmp_path: Path) -> AsyncIterator[RunnerConfig]:
    discoverer = InMemoryDiscoverer.seeded(6)
    async with embedded_config(tmp_path / "state", discoverer=discoverer) as opened:
        await opened.target.sources.publish("doc", discoverer.source)  # type: ignore[attr-defined]
        yield opened


async def test_a_segment_is_returned_only_after_a_barrier_saw_its_last_state(
    config: RunnerConfig,
) -> None:
    barriers = Barriers(config)
    async with Runner(dataclasses.replace(config, durable=barriers)) as runner:
        sidecar = await runner.cut("doc", started_by="ann")
    assert sidecar.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert barriers.seen == [{sidecar.run_id: RunState.AWAITING_CUT_AUTHORIZATION}]


async def test_a_failed_barrier_fails_the_segment_it_would_acknowledge(
    config: RunnerConfig,
) -> None:
    barriers = Barriers(config)
    barriers.fail = True
    async with Runner(dataclasses.replace(config, durable=barriers)) as runner:
        with pytest.raises(StorageFull):
            await runner.cut("doc", started_by="ann")
    assert len(barriers.seen) == 1


async def test_the_daemon_replies_after_a_barrier_and_a_failed_one_is_a_typed_error(
    config: RunnerConfig,
) -> None:
    barriers = Barriers(config)
    switch = config.kill_switch
    assert isinstance(switch, SqliteKillSwitch)
    async with (
        Runner(dataclasses.replace(config, durable=barriers)) as runner,
        anyio.create_task_group() as jobs,
    ):
        daemon = Daemon(runner, switch, EventBus(), jobs, owner="root")
        root = Caller("root", "stdio")
        assert isinstance(await daemon.handle(ListRuns(), root), RunList)
        assert len(barriers.seen) == 1
        barriers.fail = True
        reply = await daemon.handle(SetKillSwitch(engage=True, reason="test"), root)
        assert isinstance(reply, Error)
        assert reply.code == "E_STORAGE_FULL"
        assert len(barriers.seen) == 2
        jobs.cancel_scope.cancel()
