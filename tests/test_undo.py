"""A run that stops after writing ends with its writes undone (issue 10, parts 2 and 5):
every scenario of ``tests/_undo.py`` on the in-memory target and on the embedded
SQLite stores,
and what a dry run and a supervisor crash leave."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import cutter.core.mode
import cutter.walk.supervisor
from cutter import RunState, StopCode
from cutter.assembly.embedded import embedded_config
from cutter.core.kbdocs import StopDoc, stop_doc_id
from cutter.core.ports import Target
from cutter.core.route import Phase
from cutter.stores.memory.target import InMemoryIUStore, InMemoryLedger, InMemorySources
from tests._harness import DOC_ID, OPERATOR, build_runner, write_sg1_approval
from tests._undo import DISCOVERER, SCENARIOS, World

pytestmark = pytest.mark.anyio

TARGETS = ("memory", "sqlite")


@asynccontextmanager
async def world_on(kind: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    """A world on ``kind`` target stores; the KB, runs and kill switch are the
    embedded SQLite ones either way."""
    if kind == "sqlite":
        async with embedded_config(root, discoverer=DISCOVERER) as config:
            sources = config.target.sources

            async def publish_embedded(data: bytes) -> str:
                return (await sources.publish(DOC_ID, data)).sv_id  # type: ignore[attr-defined]

            yield World(config=config, publish=publish_embedded, monkeypatch=monkeypatch)
        return
    memory = InMemorySources()
    serial = iter(range(1, 100))

    async def publish(data: bytes) -> str:
        return memory.seed(DOC_ID, data, sv_id=f"sv-{next(serial)}").sv_id

    async with embedded_config(root, discoverer=DISCOVERER) as embedded:
        target = Target(sources=memory, ius=InMemoryIUStore(), ledger=InMemoryLedger())
        config = dataclasses.replace(embedded, target=target)
        yield World(config=config, publish=publish, monkeypatch=monkeypatch)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("kind", TARGETS)
async def test_a_live_run_stopping_after_leg_a(
    kind: str,
    scenario: Callable[[World], Awaitable[None]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    async with world_on(kind, tmp_path, monkeypatch) as world:
        await scenario(world)


async def test_a_dry_run_stopping_after_leg_a_has_nothing_to_undo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = build_runner(tmp_path)

    async def crash(ctx: object) -> object:
        raise RuntimeError("boom")

    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        monkeypatch.setitem(cutter.walk.phases.BODIES, Phase.STRUCTURAL_VERIFY, crash)
        failed = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
    assert (failed.state, failed.stop_code) == (RunState.FAILED, StopCode.PHASE_FAILED.value)
    assert failed.phases_passed[-1] is Phase.CUT_LEG_A  # leg A wrote, into its sandbox
    assert failed.undo is None
    assert await rig.store.rows(DOC_ID) == []
    assert await rig.ledger.entries() == []
    stop = await rig.kb.get(stop_doc_id(sc.run_id))
    assert isinstance(stop, StopDoc)
    assert stop.rollback is None


async def test_a_supervisor_crash_is_recorded_like_any_other_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Part 5: ``Runner._crashed`` moves the run through the recorder, so the change is
    logged as ``run_state_changed``, and writes the stop doc, as ``_stop`` does."""
    rig = build_runner(tmp_path)

    def crashing(phase: Phase, pins: object) -> None:
        raise RuntimeError("a bug in the supervisor")

    monkeypatch.setattr(cutter.walk.supervisor, "check_inputs", crashing)
    async with rig.runner:
        with capture_logs() as logs:
            failed = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
    assert (failed.state, failed.stop_code) == (RunState.FAILED, StopCode.PHASE_FAILED.value)
    assert failed.stop is not None
    (crash,) = [e for e in logs if e["event"] == "actor_failed"]
    assert failed.stop.error_id == crash["error_id"]
    changes = [e for e in logs if e["event"] == "run_state_changed"]
    assert [(e["from_state"], e["to_state"], e["stop_code"]) for e in changes] == [
        ("CREATED", "RUNNING", None),
        ("RUNNING", "FAILED", "STOP_PHASE_FAILED"),
    ]
    assert changes[-1]["run_id"] == failed.run_id
    stop = await rig.kb.get(stop_doc_id(failed.run_id))
    assert isinstance(stop, StopDoc)
    assert (stop.code, stop.message, stop.error_id) == (
        StopCode.PHASE_FAILED,
        "run supervisor failed unexpectedly (RuntimeError)",
        crash["error_id"],
    )
    assert await rig.run_store.load(failed.run_id) == failed
