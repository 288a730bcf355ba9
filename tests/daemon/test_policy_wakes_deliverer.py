"""A policy change reaches the deliverer at once (docs/notifications.md, Reminders):
a gate already waiting when `cutter policy set` turns reminders on gets its
`approval_reminder` when it falls due, not at the next run transition. Found by a new
user whose idle daemon sent the reminder only when another run happened to start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from cutter.core.mode import Mode
from cutter.core.principals import own_principal
from cutter.core.protocol import PolicyInfo, SetPolicy
from cutter.core.states import RunState
from tests.daemon._drive import WatchedDaemon, add_document, ask, expect, launch, start_run
from tests.daemon._webhook import Received, webhook_endpoint

pytestmark = pytest.mark.subprocess


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Received]]:
    with webhook_endpoint() as served:
        yield served


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WatchedDaemon]:
    state = tmp_path / "state"
    add_document(state_dir=state)
    running = launch(state)
    yield running
    running.stop()


def test_reminders_turned_on_by_a_policy_change_reach_a_waiting_gate(
    daemon: WatchedDaemon, endpoint: tuple[str, Received], tmp_path: Path
) -> None:
    url, events = endpoint
    secret = tmp_path / "hook.secret"
    secret.write_bytes(b"a webhook secret")
    secret.chmod(0o600)
    owner = own_principal()
    # ttl 60 s and a reminder 60 s before it: due as soon as the policy is in force
    policy = (
        f'admins = ["{owner}"]\nremind_before_seconds = 60\n'
        f'[sg_1]\napprovers = ["*"]\nttl_seconds = 60\n'
        f'[[webhooks]]\nurl = "{url}"\nsecret_file = "{secret}"\nevents = ["approval_reminder"]\n'
    )

    async def scenario() -> None:
        run = await start_run(daemon.socket, Mode.DRY_RUN)
        assert run.state is RunState.AWAITING_CUT_AUTHORIZATION, run
        expect(await ask(daemon.socket, SetPolicy(text=policy)), PolicyInfo)

    anyio.run(scenario)
    assert events.wait_for_event("approval_reminder"), events.events()
