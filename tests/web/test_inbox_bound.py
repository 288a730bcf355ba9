"""The review page's inbox stays bounded however many runs wait at a gate: the 200
that have waited longest, and how many wait in all (``cutter.web.inbox``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cutter.web.inbox import INBOX_ROWS
from tests._many_runs import no_fsync, nth_run, store_runs
from tests.web.test_app import page

pytestmark = pytest.mark.anyio

WAITING = 450


async def test_the_inbox_shows_the_longest_waiting_and_counts_the_rest(tmp_path: Path) -> None:
    waiting = [nth_run(5 * n) for n in range(WAITING)]  # each at SG_1, on a document of its own
    async with page(tmp_path) as p:
        with no_fsync():
            await store_runs(p.rig.run_store, waiting)
        inbox = await p.http.get("/")
        assert inbox.status_code == 200
        shown = re.findall(r'<td><a href="/runs/([^"]+)">', inbox.text)
        assert len(shown) == INBOX_ROWS
        oldest = sorted(waiting, key=lambda r: r.gates[0].opened_at)[:INBOX_ROWS]
        assert shown == [r.run_id for r in oldest]  # longest waiting first
        assert p.run_id not in shown  # the harness's run opened its gate last
        assert f"of {WAITING + 1} runs waiting at a gate" in inbox.text
