"""Transition events for watchers, fed by the structured log.

A structlog processor publishes every transition event to the subscribers
whose filter matches, with ``send_nowait`` into a small bounded stream: a
watcher that cannot keep up is dropped (its stream closed, it is told it
lagged), so a slow or vanished watcher never blocks a run.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from cutter.logs import TRANSITION_EVENTS
from cutter.protocol import Event

WATCH_BUFFER = 256


@dataclass(eq=False)
class Subscription:
    run_id: str | None
    send: MemoryObjectSendStream[Event]
    receive: MemoryObjectReceiveStream[Event]
    lagged: bool = False


@dataclass
class EventBus:
    subscribers: set[Subscription] = field(default_factory=set)
    # Told of each watcher dropped for lagging, when it is dropped (the daemon logs it).
    on_drop: Callable[[Subscription], None] | None = None

    def subscribe(self, run_id: str | None) -> Subscription:
        send, receive = anyio.create_memory_object_stream[Event](WATCH_BUFFER)
        subscription = Subscription(run_id, send, receive)
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscribers.discard(subscription)
        subscription.send.close()
        subscription.receive.close()

    def publish(self, event: Event) -> None:
        for sub in list(self.subscribers):
            if sub.run_id is not None and sub.run_id != event.run_id:
                continue
            try:
                sub.send.send_nowait(event)
            except anyio.WouldBlock:
                sub.lagged = True
                self.subscribers.discard(sub)
                sub.send.close()
                if self.on_drop is not None:
                    self.on_drop(sub)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.subscribers.discard(sub)

    def processor(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor: publish transition events, pass everything on."""
        name = event.get("event")
        run_id = event.get("run_id")
        if name in TRANSITION_EVENTS and isinstance(run_id, str) and self.subscribers:
            self.publish(
                Event(
                    event=str(name),
                    run_id=run_id,
                    at=datetime.now(UTC),
                    detail={k: _plain(v) for k, v in event.items() if k not in _SKIP},
                )
            )
        return event


_SKIP = frozenset({"event", "run_id", "timestamp", "level", "exc_info"})


def _plain(value: object) -> str | int | bool | None:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list | tuple):
        return ",".join(str(_plain(v)) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_plain(v)}" for k, v in value.items())
    return str(value)
