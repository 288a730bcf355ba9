"""kill -9 of the real daemon right after a ``before_*`` hook ran (failpoint ``hook:ran``:
the hook recorded, its answer not yet acted on). A restart recovers the run, runs the
hook again — a hook runs at least once per step, never zero times — and ends as an
uninterrupted walk: a passing hook's cut goes to closeout, a veto before leg A still
leaves nothing written."""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from cutter.core.hook_names import HookEvent
from cutter.core.kbdocs import HookRecord, hook_records_prefix
from cutter.core.states import RunState
from cutter.runtime.failpoints import ENV as FAILPOINT_ENV
from tests.daemon._db import consumed_approvals, stores
from tests.daemon._drive import (
    DOC_ID,
    SAMPLE_UNITS,
    WatchedDaemon,
    add_document,
    finish,
    launch,
    status,
    walk_until_death,
)
from tests.daemon.conftest import DaemonProcess

pytestmark = [pytest.mark.subprocess, pytest.mark.anyio]


def hook(path: Path, calls: Path, exit_code: int) -> None:
    path.write_text(
        f'#!/bin/sh\necho "$CUTTER_EVENT $CUTTER_RUN_ID" >> {calls}\n'
        f"echo 'not now' >&2\nexit {exit_code}\n"
    )
    path.chmod(0o700)


async def _launch(state: Path, daemons: list[DaemonProcess], env: dict[str, str]) -> WatchedDaemon:
    daemon: WatchedDaemon = await anyio.to_thread.run_sync(
        functools.partial(launch, state, "--enable-execution", env=env)
    )
    daemons.append(daemon)
    return daemon


async def _records(state: Path, run_id: str, event: HookEvent) -> list[HookRecord]:
    async with stores(state) as config:
        found = []
        for kb_id in await config.kb.list(hook_records_prefix(run_id, event)):
            doc = await config.kb.get(kb_id)
            assert isinstance(doc, HookRecord)
            found.append(doc)
    return found


@pytest.mark.parametrize(
    ("point", "died_in"), [("hook:ran@1", 1), ("hook:ran@2", 2)], ids=["leg_a", "enact"]
)
async def test_kill_9_after_a_passing_hook_runs_it_again_and_cuts(
    point: str, died_in: int, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state, calls = tmp_path / "state", tmp_path / "calls"
    add_document(state_dir=state)
    (state / "hooks").mkdir(mode=0o700)
    hook(state / "hooks" / "before_leg_a", calls, 0)
    hook(state / "hooks" / "before_lifecycle_enact", calls, 0)
    armed = await _launch(state, daemons, {FAILPOINT_ENV: point})
    assert await walk_until_death(armed.socket) == died_in
    assert await anyio.to_thread.run_sync(armed.kill) == 137

    restarted = await _launch(state, daemons, {})
    (run_id,) = restarted.recovering()
    await anyio.to_thread.run_sync(restarted.wait_stopped, run_id)
    run = await status(restarted.socket, run_id)

    async def consumed() -> list[str]:
        return [r.approval_kb_id for r in consumed_approvals(state)]

    run, _ = await finish(restarted.socket, run, consumed)
    assert run.state is RunState.CLOSEOUT_REPORTED, (run.stop_code, run.stop_message)
    assert await anyio.to_thread.run_sync(restarted.stop) == 0
    killed = "before_leg_a" if died_in == 1 else "before_lifecycle_enact"
    # The killed step's hook ran twice: once before the kill, once on recovery.
    leg_a, enact = f"before_leg_a {run_id}", f"before_lifecycle_enact {run_id}"
    expected = [leg_a, leg_a, enact] if died_in == 1 else [leg_a, enact, enact]
    assert calls.read_text().splitlines() == expected
    async with stores(state) as config:
        rows = await config.target.ius.rows(DOC_ID)
        entries = await config.target.ledger.entries()  # type: ignore[attr-defined]
    assert len(rows) == SAMPLE_UNITS
    assert {r.state for r in rows} == {"active"}
    assert [type(e.envelope).__name__ for e in entries] == ["CutEnvelope"]
    assert len(await _records(state, run_id, HookEvent(killed))) == 2


async def test_kill_9_after_a_veto_before_leg_a_still_writes_nothing(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    state, calls = tmp_path / "state", tmp_path / "calls"
    add_document(state_dir=state)
    (state / "hooks").mkdir(mode=0o700)
    hook(state / "hooks" / "before_leg_a", calls, 1)
    armed = await _launch(state, daemons, {FAILPOINT_ENV: "hook:ran"})
    assert await walk_until_death(armed.socket) == 1
    assert await anyio.to_thread.run_sync(armed.kill) == 137

    restarted = await _launch(state, daemons, {})
    (run_id,) = restarted.recovering()
    await anyio.to_thread.run_sync(restarted.wait_stopped, run_id)
    run = await status(restarted.socket, run_id)
    assert (run.state, run.stop_code) == (RunState.FAILED, "STOP_HOOK_VETOED")
    assert run.stop_message is not None
    assert run.stop_message.endswith("before_leg_a exited 1: not now")
    assert await anyio.to_thread.run_sync(restarted.stop) == 0
    assert calls.read_text().splitlines() == [f"before_leg_a {run_id}"] * 2
    async with stores(state) as config:
        assert await config.target.ius.rows(DOC_ID) == []
        assert await config.target.ledger.entries() == []  # type: ignore[attr-defined]
        backups = config.target.ius.db.value("SELECT count(*) FROM backups")  # type: ignore[attr-defined]
    assert backups == 0
