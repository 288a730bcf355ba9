"""The deliverer, in process: a memory run store, an injected clock, an httpx transport
that answers as the test says. Fan-out by event, signatures, retries on the backoff
schedule, the final ``failed``, a webhook the policy dropped, reminders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from cutter.core.outbox import DeliveryState, backoff
from cutter.core.policy import Policy
from cutter.core.webhooks import Webhook, verify
from cutter.daemon.notify import Deliverer
from cutter.stores.memory.records import InMemoryRunStore
from tests._harness import PAUSED_AT, paused_sidecar

pytestmark = pytest.mark.anyio
SECRET = b"hook-secret"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _secret(tmp_path: Path) -> str:
    path = tmp_path / "hook.secret"
    path.write_bytes(SECRET + b"\n")
    path.chmod(0o600)
    return str(path)


def _deliverer(
    store: InMemoryRunStore,
    policy: Policy,
    clock: Clock,
    answer: Callable[[httpx.Request], httpx.Response],
) -> tuple[Deliverer, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    async def in_force() -> Policy:
        return policy

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Deliverer(store, in_force, clock, client), seen


async def test_each_notice_is_posted_signed_to_the_hooks_that_want_it(tmp_path: Path) -> None:
    store = InMemoryRunStore()
    await store.create(paused_sidecar("run-a"))
    secret_file = _secret(tmp_path)
    policy = Policy(
        admins=("ann",),
        webhooks=(
            Webhook(url="http://a.test/all", secret_file=secret_file),
            Webhook(url="http://b.test/ends", secret_file=secret_file, events=("closeout",)),
        ),
    )
    deliverer, seen = _deliverer(store, policy, Clock(PAUSED_AT), lambda _: httpx.Response(204))
    assert await deliverer.deliver_once() is None  # nothing left to retry
    (request,) = seen
    (record,) = await store.notifications(None, 10)
    assert str(request.url) == "http://a.test/all"
    assert request.headers["X-Cutter-Event"] == "gate_opened"
    assert request.headers["X-Cutter-Delivery"] == record.notice.notice_id
    assert verify(SECRET, request.content, request.headers["X-Cutter-Signature"])
    assert not verify(b"another secret", request.content, request.headers["X-Cutter-Signature"])
    assert msgspec.json.decode(request.content)["notice_id"] == record.notice.notice_id
    assert [(d.endpoint, d.state, d.attempts) for d in record.deliveries] == [
        ("http://a.test/all", DeliveryState.DELIVERED, 1)
    ]
    assert await deliverer.deliver_once() is None
    assert len(seen) == 1  # delivered: never posted again


async def test_failures_retry_on_the_backoff_schedule_then_fail(tmp_path: Path) -> None:
    store = InMemoryRunStore()
    await store.create(paused_sidecar("run-a"))
    hook = Webhook(url="http://a.test/x", secret_file=_secret(tmp_path), max_attempts=3)
    clock = Clock(PAUSED_AT)
    deliverer, seen = _deliverer(
        store, Policy(admins=("ann",), webhooks=(hook,)), clock, lambda _: httpx.Response(503)
    )
    started = clock.now
    first_retry = await deliverer.deliver_once()
    assert first_retry == started + backoff(1)
    clock.now = started + backoff(1) - timedelta(microseconds=1)
    assert await deliverer.deliver_once() == first_retry  # not due yet: nothing posted
    assert len(seen) == 1
    clock.now = first_retry
    second_retry = await deliverer.deliver_once()
    assert second_retry == first_retry + backoff(2)
    clock.now = second_retry
    assert await deliverer.deliver_once() is None
    assert len(seen) == 3
    (record,) = await store.notifications(None, 10)
    (delivery,) = record.deliveries
    assert (delivery.state, delivery.attempts, delivery.last_error) == (
        DeliveryState.FAILED,
        3,
        "HTTP 503",
    )
    assert {r.headers["X-Cutter-Delivery"] for r in seen} == {record.notice.notice_id}


async def test_a_hook_the_policy_dropped_or_an_unreadable_secret_is_a_failed_attempt(
    tmp_path: Path,
) -> None:
    store = InMemoryRunStore()
    await store.create(paused_sidecar("run-a"))
    gone = tmp_path / "gone.secret"
    hook = Webhook(url="http://a.test/x", secret_file=str(gone))
    clock = Clock(PAUSED_AT)
    deliverer, seen = _deliverer(
        store, Policy(admins=("ann",), webhooks=(hook,)), clock, lambda _: httpx.Response(200)
    )
    assert await deliverer.deliver_once() == PAUSED_AT + backoff(1)
    assert seen == []  # no secret, nothing sent
    (record,) = await store.notifications(None, 10)
    assert "gone.secret" in (record.deliveries[0].last_error or "")
    # docs/notifications.md: the code is in last_error, as an operator greps for it
    assert (record.deliveries[0].last_error or "").startswith("E_SECRET_FILE_UNREADABLE: ")
    dropped, _ = _deliverer(store, Policy(admins=("ann",)), clock, lambda _: httpx.Response(200))
    clock.now = PAUSED_AT + backoff(1)
    assert await dropped.deliver_once() is None
    (record,) = await store.notifications(None, 10)
    assert record.deliveries[0].state is DeliveryState.FAILED
    assert record.deliveries[0].last_error == "the webhook is no longer in the policy"


async def test_a_waiting_gate_gets_one_reminder_before_its_ttl(tmp_path: Path) -> None:
    store = InMemoryRunStore()
    paused = paused_sidecar("run-a")
    await store.create(paused)
    hook = Webhook(url="http://a.test/x", secret_file=_secret(tmp_path))
    policy = Policy(admins=("ann",), webhooks=(hook,), remind_before_seconds=3600)
    ttl = timedelta(seconds=policy.sg_1.ttl_seconds)
    clock = Clock(paused.gates[0].opened_at)
    deliverer, seen = _deliverer(store, policy, clock, lambda _: httpx.Response(200))
    due = paused.gates[0].opened_at + ttl - timedelta(hours=1)
    assert await deliverer.deliver_once() == due
    assert [r.headers["X-Cutter-Event"] for r in seen] == ["gate_opened"]
    clock.now = due
    assert await deliverer.deliver_once() is None
    clock.now = due + timedelta(minutes=5)
    assert await deliverer.deliver_once() is None
    assert [r.headers["X-Cutter-Event"] for r in seen] == ["gate_opened", "approval_reminder"]
