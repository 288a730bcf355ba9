"""Transition events for watchers, fed by the run recorder.

The bus is the runner's transitions sink (``RunnerConfig.transitions``): the
recorder publishes every typed ``Transition`` to it right after logging it, and
the bus sends it, as a protocol ``Event``, to the subscribers whose filter matches,
with ``send_nowait`` into a small bounded stream: a watcher that cannot keep up is
dropped (its stream closed, it is told it lagged), so a slow or vanished watcher
never blocks a run. The log's configuration plays no part: a daemon whose log
drops everything still serves its watchers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from cutter.core.protocol import Event
from cutter.core.transitions import Transition

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

    def publish(self, transition: Transition) -> None:
        """The recorder's sink: ``transition`` to every watcher of its run."""
        if self.subscribers:
            self.send(event_of(transition))

    def send(self, event: Event) -> None:
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


def event_of(transition: Transition) -> Event:
    """The protocol event of a transition, stamped now: its kind, its run, and in
    ``detail`` its document and the log event's key-values (a value that is not a
    string, number, bool or null as text)."""
    change = transition.change
    detail = {k: _plain(v) for k, v in change.fields().items()}
    return Event(
        event=change.event,
        run_id=transition.run_id,
        at=datetime.now(UTC),
        detail={"doc_id": transition.doc_id, **detail},
    )


def _plain(value: object) -> str | int | bool | None:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list | tuple):
        return ",".join(str(_plain(v)) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_plain(v)}" for k, v in value.items())
    return str(value)
