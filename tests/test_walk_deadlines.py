"""What bounds a walk segment: each step, never the walk as a whole.

A phase (and the gatekeeper) must answer within ``phase_timeout``; the runner
waits for the supervisor's answer without a deadline of its own, so a segment
whose own work (a stop, an undo, the stores) takes longer than any multiple of
``phase_timeout`` still ends as the supervisor ends it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

import cutter.walk.phases
from cutter import RunState, StopCode
from cutter.core.route import Phase
from cutter.core.sidecar import Sidecar
from cutter.stores.sqlite.records import SqliteRunStore
from cutter.walk.phases import PhaseContext, PhaseOutput
from cutter.walk.runner import Runner
from tests._harness import DOC_ID, OPERATOR, build_runner

pytestmark = pytest.mark.anyio


async def hangs(ctx: PhaseContext) -> PhaseOutput:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


class SlowSaves(SqliteRunStore):
    """Saves after ``delay`` seconds once armed: a store that is slow, not broken."""

    delay = 0.0

    async def save(self, sidecar: Sidecar) -> None:
        await anyio.sleep(self.delay)
        await super().save(sidecar)


async def test_a_hung_phase_ends_the_run_at_phase_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = build_runner(tmp_path)
    monkeypatch.setitem(cutter.walk.phases.BODIES, Phase.SOURCE_PIN, hangs)
    async with Runner(dataclasses.replace(rig.runner.config, phase_timeout=0.5)) as runner:
        failed = await runner.cut(DOC_ID, started_by=OPERATOR)
    assert failed.state is RunState.FAILED
    assert failed.stop_code == StopCode.PHASE_FAILED
    assert failed.stop is not None
    # the supervisor stopped it (the phase's own deadline), not a runner giving up on it
    assert failed.stop.message == "source_pin did not finish within 0.5s"
    assert failed.phases_passed == ()
    assert await rig.run_store.load(failed.run_id) == failed


async def test_a_stop_slower_than_many_phase_timeouts_still_ends_as_asked(
    tmp_path: Path,
) -> None:
    """The abort of a paused run asks no child: its time is the supervisor's own
    (recording the stop). A runner that bounded the whole segment by a multiple of
    ``phase_timeout`` gave up on it and failed the run instead."""
    rig = build_runner(tmp_path)
    async with rig.runner:
        paused = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
    phase_timeout = 0.01
    slow = SlowSaves(rig.db)
    slow.delay = phase_timeout * 40
    config = dataclasses.replace(rig.runner.config, run_store=slow, phase_timeout=phase_timeout)
    async with Runner(config) as runner:
        aborted = await runner.abort(paused.run_id, reason="wrong document", by="op-z")
    assert aborted.state is RunState.ABORTED
    assert aborted.stop_code == StopCode.OPERATOR_ABORT
    assert await rig.run_store.load(paused.run_id) == aborted
