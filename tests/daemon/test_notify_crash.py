"""Notifications are not lost: a kill -9 of the real daemon between a transition and its
webhook delivery, then a restart, and a local HTTP server still receives every event.

The test runs a ``ThreadingHTTPServer`` on loopback that records every POST. The daemon's
policy names it as a webhook with a secret file. The daemon is armed with a failpoint:

- ``notify:enqueued``: the first delivery is about to be POSTed — the gate_opened notice
  is in the outbox (committed with the run's save), nothing sent. The restarted daemon
  sends it: every notice arrives exactly once.
- ``notify:posted``: the endpoint answered 200, the delivery is not yet recorded. The
  restarted daemon sends it again with the same ``X-Cutter-Delivery``: the documented
  at-least-once case, which a receiver deduping on that header sees once.

Either way the run is then driven through both gates to closeout, and the receiver (after
dedupe) has each of the run's five events once, every signature valid under the secret.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.core.mode import Mode
from cutter.core.outbox import DeliveryState
from cutter.core.principals import own_principal
from cutter.core.protocol import PolicyInfo, SetPolicy
from cutter.core.states import RunState
from cutter.core.webhooks import verify
from cutter.daemon.client import DaemonUnavailable
from cutter.runtime.failpoints import ENV as FAILPOINT_ENV
from tests.daemon._db import stores
from tests.daemon._drive import (
    WatchedDaemon,
    add_document,
    approve,
    ask,
    expect,
    launch,
    list_runs,
    start_run,
    status,
)
from tests.daemon._webhook import WAIT_S, Received, webhook_endpoint
from tests.daemon.conftest import DaemonProcess

SECRET = b"a webhook secret"
EVENTS = ["gate_opened", "approval_consumed", "gate_opened", "approval_consumed", "closeout"]


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Received]]:
    with webhook_endpoint() as served:
        yield served


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("published") / "state"
    add_document(state_dir=state)
    return state


def _policy(url: str, secret_file: Path) -> str:
    owner = own_principal()
    return (
        f'admins = ["{owner}"]\nrelays = ["{owner}"]\n'
        f'[[webhooks]]\nurl = "{url}"\nsecret_file = "{secret_file}"\n'
    )


async def _launch(
    state: Path, daemons: list[DaemonProcess], failpoint: str | None = None
) -> WatchedDaemon:
    env = {FAILPOINT_ENV: failpoint} if failpoint is not None else None
    daemon: WatchedDaemon = await anyio.to_thread.run_sync(
        functools.partial(launch, state, env=env)
    )
    daemons.append(daemon)
    return daemon


@pytest.mark.subprocess
@pytest.mark.anyio
@pytest.mark.parametrize("point", ["notify:enqueued", "notify:posted"])
async def test_kill_9_between_transition_and_delivery_still_delivers_every_event_once(
    point: str,
    published: Path,
    tmp_path: Path,
    endpoint: tuple[str, Received],
    daemons: list[DaemonProcess],
) -> None:
    url, received = endpoint
    state = tmp_path / "state"
    shutil.copytree(published, state)
    secret_file = tmp_path / "hook.secret"
    secret_file.write_bytes(SECRET + b"\n")
    secret_file.chmod(0o600)

    armed = await _launch(state, daemons, point)
    reply = await ask(armed.socket, SetPolicy(text=_policy(url, secret_file)))
    expect(reply, PolicyInfo)
    with contextlib.suppress(DaemonUnavailable):  # it dies at its first delivery, answered or not
        await start_run(armed.socket, Mode.DRY_RUN)
    assert await anyio.to_thread.run_sync(functools.partial(armed.process.wait, WAIT_S)) == 137
    assert await anyio.to_thread.run_sync(armed.kill) == 137  # only reaps it

    # What the crash left: the gate_opened notice in the outbox, its delivery not done.
    async with stores(state) as config:
        (record,) = await config.run_store.notifications(None, 10)
    assert record.notice.event == "gate_opened"
    assert [d.state for d in record.deliveries] in ([], [DeliveryState.PENDING])
    posted_before = len(received.posts)
    assert posted_before == (1 if point == "notify:posted" else 0)

    restarted = await _launch(state, daemons)
    (run,) = await list_runs(restarted.socket)
    run = await status(restarted.socket, run.run_id)
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    received.wait_for(1)
    for _ in range(2):
        run = (await approve(restarted.socket, run)).run
    assert run.state is RunState.CLOSEOUT_REPORTED, (run.stop_code, run.stop_message)
    received.wait_for(len(EVENTS))
    closeout = received.posts[-1][0]
    assert closeout["x-cutter-event"] == "closeout"

    def recorded(e: dict[str, object]) -> bool:  # the last POST's delivery is recorded
        return (
            e.get("event") == "notice_delivered"
            and e.get("notice_id") == closeout["x-cutter-delivery"]
        )

    await anyio.to_thread.run_sync(restarted.wait_event, recorded, "the closeout delivered")
    # What an operator sees through the daemon: every notice delivered, none pending.
    shown = await anyio.to_thread.run_sync(
        CliRunner().invoke, main, ["notifications", "--socket", str(restarted.socket)]
    )
    assert shown.exit_code == 0, shown.output
    rows = [line.split("  ") for line in shown.stdout.splitlines()[1:]]
    assert [(r[1], r[2], r[4], r[5]) for r in rows] == [
        (event, run.run_id, url, "delivered") for event in EVENTS
    ]
    assert await anyio.to_thread.run_sync(restarted.stop) == 0

    deduped = received.deduped()
    assert [h["x-cutter-event"] for h, _ in deduped.values()] == EVENTS
    for delivery_id, (headers, body) in deduped.items():
        notice = json.loads(body)
        assert notice["notice_id"] == delivery_id
        assert notice["run_id"] == run.run_id
        assert notice["event"] == headers["x-cutter-event"]
    for headers, body in received.posts:
        assert verify(SECRET, body, headers["x-cutter-signature"])
        assert not verify(b"another secret", body, headers["x-cutter-signature"])
    ids = [h["x-cutter-delivery"] for h, _ in received.posts]
    first = record.notice.notice_id
    if point == "notify:enqueued":
        assert sorted(ids) == sorted(deduped)  # exactly once each, nothing repeated
    else:  # posted, then killed before it was recorded: sent again, same delivery id
        assert ids.count(first) == 2
        assert sorted(i for i in ids if i != first) == sorted(i for i in deduped if i != first)

    async with stores(state) as config:
        records = await config.run_store.notifications(None, 10)
    assert [r.notice.notice_id for r in records] == list(deduped)
    for r in records:
        (delivery,) = r.deliveries
        assert (delivery.endpoint, delivery.state, delivery.attempts) == (
            url,
            DeliveryState.DELIVERED,
            1,
        )


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_kill_9_before_a_notification_hook_ran_runs_it_once_after_the_restart(
    published: Path, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A notice's hook is a delivery of the outbox too: the daemon killed just before
    running it (the notice committed with the run's save) runs it after the restart,
    once, told the notice."""
    state = tmp_path / "state"
    shutil.copytree(published, state)
    hooks = state / "hooks"
    hooks.mkdir(mode=0o700)
    told = tmp_path / "told"
    hook = hooks / "gate_opened"
    hook.write_text(f"#!/bin/sh\ncat >> {told}\n")
    hook.chmod(0o700)

    armed = await _launch(state, daemons, "notify:enqueued")
    with contextlib.suppress(DaemonUnavailable):  # it dies before the hook runs
        await start_run(armed.socket, Mode.DRY_RUN)
    assert await anyio.to_thread.run_sync(functools.partial(armed.process.wait, WAIT_S)) == 137
    assert await anyio.to_thread.run_sync(armed.kill) == 137  # only reaps it
    assert not told.exists()

    restarted = await _launch(state, daemons)
    (run,) = await list_runs(restarted.socket)

    def ran(e: dict[str, object]) -> bool:
        return e.get("event") == "notice_delivered" and e.get("endpoint") == "hook:directory"

    await anyio.to_thread.run_sync(restarted.wait_event, ran, "the hook delivered")
    assert await anyio.to_thread.run_sync(restarted.stop) == 0
    lines = told.read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == [run.run_id]
    (event,) = map(json.loads, lines)
    assert (event["event"], event["gate"], event["mode"]) == ("gate_opened", "SG_1", "DRY_RUN")
    async with stores(state) as config:
        (record,) = await config.run_store.notifications(None, 10)
    assert record.notice.notice_id == event["notice_id"]
    assert [(d.endpoint, d.state, d.attempts) for d in record.deliveries] == [
        ("hook:directory", DeliveryState.DELIVERED, 1)
    ]
