"""What the review page tells the reviewer of a LIVE revert at SG_2 (docs/revert.md):
that enact puts the backup's rows back, never "dry run: not written", which a
restore's unstaged change set used to be rendered as."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from cutter.assembly.embedded import embedded_config
from cutter.core.mode import Mode
from cutter.core.route import Gate
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.walk.runner import Runner
from cutter.web.app import review_app
from tests._harness import OPERATOR
from tests._restore import SAMPLE, World, live


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    live()
    async with embedded_config(tmp_path / "state") as config, Runner(config) as runner:
        yield World(runner, config)


@pytest.mark.anyio
async def test_the_page_of_a_live_revert_at_sg2_says_what_enact_puts_back(world: World) -> None:
    await world.publish(SAMPLE)
    cut = await world.cut()
    active = len(await world.rows())
    sc = await world.runner.revert(cut.run_id, Mode.LIVE, started_by=OPERATOR)
    sc = await world.approve(sc, Gate.SG_1)
    async with anyio.create_task_group() as jobs:
        daemon = Daemon(world.runner, world.config.kill_switch, EventBus(), jobs, owner="root")
        transport = httpx.ASGITransport(app=review_app(daemon))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            page = await http.get(f"/runs/{sc.run_id}")
        jobs.cancel_scope.cancel()
    assert page.status_code == 200, page.text
    assert "dry run" not in page.text
    assert "lifecycle_enact puts back 0 active rows from the backup" in page.text
    assert f"and retires {active} active rows" in page.text
