"""An actor's bounded mailbox: a deque, one waiting receiver, senders waiting for room.

Putting into a mailbox with room and taking from one that holds something never
waits, raises nothing and passes no schedule point; the one receiver (the actor's
own task) waits on a slot (``actors.wake``) only when it is empty, and a sender
only when it is full. Waiting senders get room in the order they came, ahead of
any newcomer. ``close`` refuses new items and waiting senders; what is already
inside is still taken (``take`` answers None once it is empty).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from actors.wake import Slot

T = TypeVar("T")


class MailboxClosed(Exception):
    """Raised to a sender once the mailbox is closed (the actor maps it to ActorStopped)."""


class Mailbox(Generic[T]):
    __slots__ = ("_capacity", "_closed", "_items", "_new_slot", "_receiver", "_senders")

    def __init__(self, capacity: int, new_slot: Callable[[], Slot]) -> None:
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._new_slot = new_slot
        self._closed = False
        self._receiver: Slot | None = None
        self._senders: deque[tuple[T, Slot]] = deque()

    @property
    def closed(self) -> bool:
        return self._closed

    def put_nowait(self, item: T) -> bool:
        """Append ``item`` if there is room; False if full. Raises MailboxClosed."""
        if self._closed:
            raise MailboxClosed
        items = self._items
        if len(items) >= self._capacity or self._senders:
            return False
        items.append(item)
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            if not receiver.done():
                receiver.set_result(True)
        return True

    async def put(self, item: T) -> None:
        """Append ``item``, waiting for room. Raises MailboxClosed (also while waiting)."""
        if self.put_nowait(item):
            return
        slot = self._new_slot()
        entry = (item, slot)
        self._senders.append(entry)
        try:
            admitted = await slot
        except BaseException:
            if entry in self._senders:
                self._senders.remove(entry)
            raise
        if not admitted:
            raise MailboxClosed

    def take(self) -> T | None:
        """The oldest item, or None if there is none now."""
        items = self._items
        if not items:
            return None
        item = items.popleft()
        if self._senders:
            self._admit()
        return item

    def receiver(self) -> Slot:
        """A slot the receiver awaits while the mailbox is empty: set by the next
        ``put`` or by ``close``, then ``take`` again. (A slot, not a coroutine:
        one frame fewer per wait; a receiver cancelled while waiting leaves a
        cancelled slot behind, which no setter touches.)"""
        slot = self._new_slot()
        self._receiver = slot
        return slot

    def close(self) -> None:
        """Take no more items; refuse the waiting senders; wake the receiver."""
        if self._closed:
            return
        self._closed = True
        senders, self._senders = self._senders, deque()
        for _item, slot in senders:
            if not slot.done():
                slot.set_result(False)
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            if not receiver.done():
                receiver.set_result(True)

    def drain(self) -> list[T]:
        """Take everything inside now (after ``close``: what was never handled)."""
        items = list(self._items)
        self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)

    def _admit(self) -> None:
        items, senders = self._items, self._senders
        while senders and len(items) < self._capacity:
            item, slot = senders.popleft()
            if slot.done():
                continue  # its sender was cancelled: the item was never sent
            items.append(item)
            slot.set_result(True)
