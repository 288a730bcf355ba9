"""Hooks in a walk (issue 15, item 3): a ``before_*`` hook that exits non-zero vetoes
its write, one that hangs is killed at the policy's timeout and stops the run; a
notification hook is run by the outbox's deliverer once its notice is saved, and
whatever it does is a delivery attempt, never a stop; every hook run is recorded.

The runs are live on the embedded stores (``embedded_config``: SQLite target, KB and
runs), with hooks in the state directory's ``hooks/`` or in the stored policy."""

from __future__ import annotations

import dataclasses
import json
import os
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

import cutter.core.mode
from cutter.assembly.embedded import embedded_config
from cutter.core.hook_names import HookEvent
from cutter.core.kbdocs import HookRecord, hook_records_prefix
from cutter.core.mode import Mode
from cutter.core.outbox import DeliveryState
from cutter.core.policy import Policy
from cutter.core.route import Pin
from cutter.core.state_dir import StateDir
from cutter.core.states import Rollback, RunState
from cutter.daemon.notify import HOOK_MAX_ATTEMPTS, open_deliverer
from cutter.walk.policy_book import current, replace
from tests._harness import OPERATOR, stored_rows
from tests._undo import DISCOVERER, FIRST, World, approve, earlier_cut, to_sg2

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

DOC_ID = "doc-charter-001"
TARGET_TABLES = ("ius", "backups", "ledger")


@asynccontextmanager
async def live_world(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[World, Path]]:
    """The embedded stores under ``root/state`` and their hooks directory (made 0700)."""
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    state = root / "state"
    async with embedded_config(state, discoverer=DISCOVERER) as config:
        sources = config.target.sources

        async def publish(data: bytes) -> str:
            return (await sources.publish(DOC_ID, data)).sv_id  # type: ignore[attr-defined]

        hooks = StateDir(state).hooks
        hooks.mkdir(mode=0o700)
        yield World(config=config, publish=publish, monkeypatch=monkeypatch), hooks


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o700)
    return path


def telling(out: Path, then: str) -> str:
    """A hook body that writes its stdin and environment under ``out``, then ``then``."""
    return f"cat > {out}.json\nenv > {out}.env\n{then}"


def told(out: Path) -> tuple[dict[str, Any], dict[str, str]]:
    env = dict(line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines())
    return json.loads(Path(f"{out}.json").read_text()), env


def target_rows(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The embedded target's rows under ``root/state``: IUs, backups, ledger entries."""
    rows = stored_rows(StateDir(root / "state").database)
    return {t: rows.get(t, []) for t in TARGET_TABLES}


async def records(world: World, run_id: str, event: HookEvent) -> list[HookRecord]:
    found = []
    for kb_id in sorted(await world.config.kb.list(hook_records_prefix(run_id, event))):
        doc = await world.config.kb.get(kb_id)
        assert isinstance(doc, HookRecord)
        found.append(doc)
    return found


async def deliver(world: World) -> None:
    """One pass of the daemon's deliverer over the world's outbox: what runs the
    notification hooks of the notices the runs saved."""
    async with open_deliverer(world.config) as deliverer:
        await deliverer.deliver_once()


async def set_policy(world: World, **fields: Any) -> None:
    kb = world.config.kb
    before = await current(kb, Policy(admins=("ops",)))
    await replace(kb, before, Policy(admins=("ops",), **fields), by="ops", at=world.config.clock())


def dead(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaped has), waiting at most
    30 s on a pidfd for the kernel to deliver the kill already sent."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 30)[0])
    finally:
        os.close(fd)


async def test_a_veto_before_leg_a_stops_a_live_run_with_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_world(tmp_path, monkeypatch) as (world, hooks):
        veto = script(
            hooks / "before_leg_a",
            telling(tmp_path / "veto", "echo 'change freeze until Monday' >&2\nexit 1\n"),
        )
        script(hooks / "run_stopped", telling(tmp_path / "stopped", "exit 0\n"))
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            before = target_rows(tmp_path)
            sc = await runner.resume(sc.run_id, await approve(world, sc))
        assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_VETOED")
        assert sc.stop is not None
        assert sc.stop.message == (f"before_leg_a hook {veto} exited 1: change freeze until Monday")
        # Nothing written: no backup, no IU row, no ledger entry; nothing to undo.
        assert target_rows(tmp_path) == before == {t: [] for t in TARGET_TABLES}
        assert sc.undo is None
        assert Pin.CHANGE_SET_ID not in sc.pins
        stop = await world.stop_doc(sc.run_id)
        assert (stop.code.value, stop.message) == ("STOP_HOOK_VETOED", sc.stop.message)
        # The hook was told the event on stdin and in its environment.
        event, env = told(tmp_path / "veto")
        assert event["event"] == "before_leg_a"
        assert (event["run_id"], event["mode"], event["gate"]) == (sc.run_id, "LIVE", "SG_1")
        assert event["backup_id"] == sc.pins[Pin.BACKUP_ID]
        assert env["CUTTER_EVENT"] == "before_leg_a"
        assert (env["CUTTER_RUN_ID"], env["CUTTER_MODE"]) == (sc.run_id, "LIVE")
        # Recorded, with what it said.
        (record,) = await records(world, sc.run_id, HookEvent.BEFORE_LEG_A)
        assert (record.hook, record.source, record.exit_code) == (str(veto), "directory", 1)
        assert record.stderr == "change freeze until Monday\n"
        # run_stopped is a notice: its hook runs when the deliverer delivers it.
        assert not (tmp_path / "stopped.json").exists()
        await deliver(world)
        stopped, stopped_env = told(tmp_path / "stopped")
        assert stopped["stop_code"] == "STOP_HOOK_VETOED"
        assert stopped_env["CUTTER_STOP_CODE"] == "STOP_HOOK_VETOED"
        assert stopped["state"] == "FAILED"


async def test_a_hook_that_hangs_is_killed_at_its_timeout_and_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy hook (no shell, its argv as given) past ``hook_timeout_seconds``."""
    async with live_world(tmp_path, monkeypatch) as (world, _):
        hang = script(
            tmp_path / "hang",
            f'echo "$1" > {tmp_path}/arg\nsleep 100000 &\necho $! > {tmp_path}/child.pid\n'
            f"echo $$ > {tmp_path}/hook.pid\nwait\n",
        )
        await set_policy(
            world,
            hooks={HookEvent.BEFORE_LEG_A: (str(hang), "two words; $(no shell)")},
            hook_timeout_seconds=1,
        )
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sc = await runner.resume(sc.run_id, await approve(world, sc))
        assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_TIMEOUT")
        assert sc.stop is not None
        assert sc.stop.message == (
            f"before_leg_a hook {hang} did not finish within 1s and was killed"
        )
        assert (tmp_path / "arg").read_text() == "two words; $(no shell)\n"
        hook_pid, child_pid = (int((tmp_path / f).read_text()) for f in ("hook.pid", "child.pid"))
        assert dead(hook_pid)
        assert dead(child_pid)  # its whole process group
        assert target_rows(tmp_path) == {t: [] for t in TARGET_TABLES}
        (record,) = await records(world, sc.run_id, HookEvent.BEFORE_LEG_A)
        assert (record.source, record.exit_code, record.timed_out) == ("policy", None, True)


async def test_a_veto_before_lifecycle_enact_rolls_leg_a_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_world(tmp_path, monkeypatch) as (world, hooks):
        async with world.runner() as runner:
            rows = await earlier_cut(world, runner)
            veto = script(
                hooks / "before_lifecycle_enact",
                telling(tmp_path / "enact", "echo 'not during the audit'\nexit 2\n"),
            )
            sc = await to_sg2(world, runner)
            assert await world.rows() != rows  # leg A wrote its staged rows
            sc = await runner.resume(sc.run_id, await approve(world, sc))
        assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_VETOED")
        assert sc.stop is not None
        assert sc.stop.message.startswith(
            f"before_lifecycle_enact hook {veto} exited 2: not during the audit"
        )
        assert sc.stop.message.endswith("its writes were rolled back")
        assert sc.undo is not None
        assert sc.undo.status is Rollback.DONE
        assert await world.rows() == rows
        assert [e.change_set_id for e in await world.rollbacks(sc.run_id)] == [
            sc.pins[Pin.CHANGE_SET_ID]
        ]
        assert await world.config.target.sources.cut_by(str(sc.pins[Pin.SOURCE_VERSION_ID])) is None
        event, env = told(tmp_path / "enact")
        assert (event["gate"], event["change_set_id"]) == ("SG_2", sc.pins[Pin.CHANGE_SET_ID])
        assert env["CUTTER_EVENT"] == "before_lifecycle_enact"


async def test_notification_hooks_run_from_the_outbox_and_never_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run to the end runs no notification hook; the deliverer's pass runs each
    notice's hooks, records them, and keeps a failing one to retry."""
    async with live_world(tmp_path, monkeypatch) as (world, hooks):
        script(hooks / "gate_opened", telling(tmp_path / "opened", "exit 1\n"))
        script(hooks / "closeout", telling(tmp_path / "closeout", "sleep 100000\n"))
        await set_policy(
            world,
            hooks={HookEvent.APPROVAL_CONSUMED: (str(tmp_path / "no-such-hook"),)},
            hook_timeout_seconds=1,
        )
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.DRY_RUN, started_by=OPERATOR)
            sc = await runner.resume(sc.run_id, await approve(world, sc))
            sc = await runner.resume(sc.run_id, await approve(world, sc))
        assert sc.state is RunState.CLOSEOUT_REPORTED, sc.stop
        for event in (HookEvent.GATE_OPENED, HookEvent.APPROVAL_CONSUMED, HookEvent.CLOSEOUT):
            assert await records(world, sc.run_id, event) == []  # the walk ran none
        with capture_logs() as logs:
            await deliver(world)
        opened = await records(world, sc.run_id, HookEvent.GATE_OPENED)
        assert [r.exit_code for r in opened] == [1, 1]  # SG_1, then SG_2
        consumed = await records(world, sc.run_id, HookEvent.APPROVAL_CONSUMED)
        assert [r.failure for r in consumed] == [
            f"No such file or directory: {tmp_path / 'no-such-hook'}"
        ] * 2
        (closeout,) = await records(world, sc.run_id, HookEvent.CLOSEOUT)
        assert closeout.timed_out
        event, env = told(tmp_path / "opened")  # the last one: SG_2
        assert (event["gate"], env["CUTTER_GATE"], env["CUTTER_MODE"]) == (
            "SG_2",
            "SG_2",
            "DRY_RUN",
        )
        ran = [e for e in logs if e["event"] == "hook_ran"]
        assert len(ran) == 5
        assert {e["run_id"] for e in ran} == {sc.run_id}
        # Each hook is a delivery of its notice: failed attempts wait for a retry.
        listed = await world.config.run_store.notifications(None, 100)
        hooked = sorted(
            (r.notice.event, d.endpoint, d.state, d.attempts) for r in listed for d in r.deliveries
        )
        assert hooked == sorted(
            [("gate_opened", "hook:directory", DeliveryState.PENDING, 1)] * 2
            + [("approval_consumed", "hook:policy", DeliveryState.PENDING, 1)] * 2
            + [("closeout", "hook:directory", DeliveryState.PENDING, 1)]
        )
        assert HOOK_MAX_ATTEMPTS > 1


async def test_a_notification_hook_that_exits_0_is_delivered_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_world(tmp_path, monkeypatch) as (world, hooks):
        script(hooks / "gate_opened", telling(tmp_path / "opened", "exit 0\n"))
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.DRY_RUN, started_by=OPERATOR)
        await deliver(world)
        await deliver(world)  # delivered: not run again
        (record,) = await records(world, sc.run_id, HookEvent.GATE_OPENED)
        assert record.exit_code == 0
        event, env = told(tmp_path / "opened")
        assert (event["run_id"], event["gate"], env["CUTTER_NOTICE_ID"]) == (
            sc.run_id,
            "SG_1",
            event["notice_id"],
        )
        (listed,) = await world.config.run_store.notifications(None, 100)
        assert [(d.endpoint, d.state) for d in listed.deliveries] == [
            ("hook:directory", DeliveryState.DELIVERED)
        ]


async def test_a_notice_hook_of_an_unsafe_directory_fails_visibly_and_runs_once_made_safe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not skipped in silence: the delivery is there, failed with the reason, and the
    retry after the directory is made safe runs the hook."""
    async with live_world(tmp_path, monkeypatch) as (world, hooks):
        script(hooks / "gate_opened", telling(tmp_path / "opened", "exit 0\n"))
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.DRY_RUN, started_by=OPERATOR)
        now = [world.config.clock()]
        config = dataclasses.replace(world.config, clock=lambda: now[0])
        hooks.chmod(0o777)
        async with open_deliverer(config) as deliverer:
            await deliverer.deliver_once()
        (listed,) = await world.config.run_store.notifications(None, 100)
        (delivery,) = listed.deliveries
        assert (delivery.endpoint, delivery.state, delivery.attempts) == (
            "hook:directory",
            DeliveryState.PENDING,
            1,
        )
        assert delivery.last_error is not None
        assert delivery.last_error.startswith("E_HOOKS_DIR_UNSAFE: ")
        assert not (tmp_path / "opened.json").exists()
        hooks.chmod(0o700)
        now[0] = delivery.next_at
        async with open_deliverer(config) as deliverer:
            await deliverer.deliver_once()
        (listed,) = await world.config.run_store.notifications(None, 100)
        assert [(d.state, d.attempts) for d in listed.deliveries] == [(DeliveryState.DELIVERED, 2)]
        event, _ = told(tmp_path / "opened")
        assert (event["run_id"], event["gate"]) == (sc.run_id, "SG_1")


async def test_a_dry_run_runs_its_before_hooks_once_and_they_can_veto_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run shows what a live one would do: its before_* hooks run (told
    ``DRY_RUN``), once each — a later segment's replay of leg A runs none again."""
    async with live_world(tmp_path, monkeypatch) as (world, hooks):
        script(hooks / "before_leg_a", telling(tmp_path / "leg_a", "exit 0\n"))
        script(hooks / "before_lifecycle_enact", "echo 'dry, but no' >&2\nexit 1\n")
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.DRY_RUN, started_by=OPERATOR)
            sc = await runner.resume(sc.run_id, await approve(world, sc))
            assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
            sc = await runner.resume(sc.run_id, await approve(world, sc))  # replays leg A
        assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_VETOED")
        assert len(await records(world, sc.run_id, HookEvent.BEFORE_LEG_A)) == 1
        assert told(tmp_path / "leg_a")[1]["CUTTER_MODE"] == "DRY_RUN"
        assert target_rows(tmp_path) == {t: [] for t in TARGET_TABLES}


async def test_a_hooks_directory_others_may_write_stops_the_run_before_leg_a(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_world(tmp_path, monkeypatch) as (world, hooks):
        script(hooks / "before_leg_a", f"touch {tmp_path}/ran\nexit 0\n")
        await world.publish(FIRST.source)
        async with world.runner() as runner:
            sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            hooks.chmod(0o777)
            sc = await runner.resume(sc.run_id, await approve(world, sc))
        assert (sc.state, sc.stop_code) == (RunState.FAILED, "STOP_HOOK_FAILED")
        assert sc.stop is not None
        assert "writable by others (mode 0777)" in sc.stop.message
        assert not (tmp_path / "ran").exists()
        assert target_rows(tmp_path) == {t: [] for t in TARGET_TABLES}
