"""The deadlines of pending waits (asks, stops), kept by one task per actor system.

A timer per ask (a loop timer, a cancel scope) costs on asyncio a quarter of an
honest request/reply and on trio more than a whole one, and almost every ask is
answered long before its deadline. So a wait registers its slot and deadline
here (a dict entry) and drops it once answered; one keeper task sleeps, under a
cancel scope whose deadline is the earliest registered, and fills every slot past
its deadline with ``EXPIRED``. Registering a deadline earlier than the
one it sleeps towards moves its scope's deadline; nothing else wakes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio

from actors.wake import EXPIRED, Slot, backend


class Deadlines:
    """Made inside the running event loop (``ActorSystem.__aenter__``); ``keep`` runs
    in the system's task group for as long as the system lives."""

    __slots__ = ("_pending", "_scope", "_wake_at", "backend", "new_slot", "now")

    def __init__(self) -> None:
        self.backend = backend()
        self.new_slot: Callable[[], Slot] = self.backend.new_slot
        self.now: Callable[[], float] = self.backend.now
        self._pending: dict[Slot, float] = {}
        self._wake_at = math.inf
        self._scope: anyio.CancelScope | None = None

    def add(self, slot: Slot, timeout: float) -> None:
        """Fill ``slot`` with ``EXPIRED`` unless it is dropped within ``timeout`` seconds."""
        deadline = self.now() + timeout
        self._pending[slot] = deadline
        if deadline < self._wake_at:
            self._wake_at = deadline
            if self._scope is not None:
                self._scope.deadline = deadline

    @property
    def pending(self) -> int:
        """How many waits have a deadline registered now."""
        return len(self._pending)

    def drop(self, slot: Slot) -> None:
        """``slot`` was answered (or given up): forget its deadline."""
        self._pending.pop(slot, None)

    async def keep(self) -> None:
        """Expire slots at their deadlines, until cancelled with the system."""
        while True:
            with anyio.CancelScope(deadline=self._wake_at) as scope:
                self._scope = scope
                await anyio.sleep_forever()
            self._scope = None
            now = self.now()
            due = [slot for slot, deadline in self._pending.items() if deadline <= now]
            for slot in due:
                del self._pending[slot]
                if not slot.done():
                    slot.set_result(EXPIRED)
            self._wake_at = min(self._pending.values(), default=math.inf)
