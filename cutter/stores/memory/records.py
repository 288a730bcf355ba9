"""In-memory knowledge base and run store: the embedded stores' semantics, in dicts.

Values are kept as their encoded bytes and decoded on every read, exactly as
the database stores do, so this fake refuses what they refuse (hostile ids, values
that would not decode) and no caller ever shares mutable state with it. Every
method passes a checkpoint first, so callers see the same interleavings (and
cancellation points) as with a store that really waits.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from anyio.lowlevel import checkpoint

from cutter.core.codec import decode_kb_doc, decode_stored_sidecar, encode_kb_doc, encode_sidecar
from cutter.core.db_approvals import reserved
from cutter.core.errors import ApprovalConsumedAlready, CorruptRecord, DocumentBusy, UnknownRun
from cutter.core.ids import check_kb_id, check_run_id
from cutter.core.kbdocs import KBDoc, under_prefix
from cutter.core.notices import Notice, decode_notice, encode_notice, notices_for
from cutter.core.outbox import Delivery, DeliveryState, DueDelivery, NoticeRecord
from cutter.core.quarantine import UnreadableRun, unreadable
from cutter.core.run_pages import RunFilter, fill_page
from cutter.core.run_revision import check_revision
from cutter.core.sidecar import ApprovalUse, Sidecar
from cutter.core.states import TERMINAL


class InMemoryKnowledgeBase:
    def __init__(self) -> None:
        self._docs: dict[str, bytes] = {}

    async def put(self, kb_id: str, doc: KBDoc) -> None:
        await checkpoint()
        kb_id = reserved(check_kb_id(kb_id))
        self._docs[kb_id] = encode_kb_doc(kb_id, doc)

    async def get(self, kb_id: str) -> KBDoc:
        await checkpoint()
        kb_id = check_kb_id(kb_id)
        try:
            data = self._docs[kb_id]
        except KeyError:
            raise KeyError(kb_id) from None
        return decode_kb_doc(data, f"memory:{kb_id}")

    async def list(self, prefix: str) -> builtins.list[str]:
        """Sorted ids of the doc ``prefix`` and the docs below it; ``""`` lists all."""
        await checkpoint()
        if prefix:
            check_kb_id(prefix)
        return sorted(k for k in self._docs if under_prefix(k, prefix))


class InMemoryRunStore:
    def __init__(self) -> None:
        self._sidecars: dict[str, bytes] = {}
        self._consumed: dict[str, str] = {}
        self._open: dict[str, str] = {}  # doc_id -> the open run that holds it
        self._revisions: dict[str, int] = {}  # run_id -> the stored revision, as a column
        self._outbox: dict[str, bytes] = {}  # notice_id -> the notice, in enqueue order
        self._dispatched: set[str] = set()
        self._deliveries: dict[tuple[str, str], Delivery] = {}  # (notice_id, endpoint)

    async def load(self, run_id: str) -> Sidecar:
        await checkpoint()
        run_id = check_run_id(run_id)
        try:
            data = self._sidecars[run_id]
        except KeyError:
            raise UnknownRun(run_id) from None
        return decode_stored_sidecar(data, run_id, f"memory:runs/{run_id}")

    async def create(self, sidecar: Sidecar) -> None:
        await checkpoint()
        data = encode_sidecar(sidecar)
        # Check and set with no await in between: atomic within the event loop.
        holder = self._open.get(sidecar.doc_id)
        if holder is not None and holder != sidecar.run_id:
            raise DocumentBusy(sidecar.doc_id, f"run {holder}")
        if sidecar.state not in TERMINAL:
            self._open[sidecar.doc_id] = sidecar.run_id
        self._sidecars[sidecar.run_id] = data
        self._revisions[sidecar.run_id] = sidecar.revision
        self._enqueue(sidecar)

    async def save(self, sidecar: Sidecar) -> None:
        """Compare-and-save (``cutter.core.run_revision``)."""
        await checkpoint()
        data = encode_sidecar(sidecar)
        # Compare and set with no await in between: atomic within the event loop.
        check_revision(sidecar.run_id, self._revisions.get(sidecar.run_id), sidecar.revision)
        self._stored(sidecar, data)

    async def save_consuming(self, sidecar: Sidecar, use: ApprovalUse) -> None:
        """The consumption first, as PostgreSQL's transaction: a consumed approval is
        ``ApprovalConsumedAlready`` whatever the revision."""
        await checkpoint()
        data = encode_sidecar(sidecar)
        kb_id = check_kb_id(use.approval_kb_id)
        # Check and set with no await in between: atomic within the event loop.
        if kb_id in self._consumed:
            raise ApprovalConsumedAlready(sidecar.run_id, kb_id)
        check_revision(sidecar.run_id, self._revisions.get(sidecar.run_id), sidecar.revision)
        self._consumed[kb_id] = sidecar.run_id
        self._stored(sidecar, data)

    def _stored(self, sidecar: Sidecar, data: bytes) -> None:
        self._sidecars[sidecar.run_id] = data
        self._revisions[sidecar.run_id] = sidecar.revision
        if sidecar.state in TERMINAL and self._open.get(sidecar.doc_id) == sidecar.run_id:
            del self._open[sidecar.doc_id]
        self._enqueue(sidecar)

    def _enqueue(self, sidecar: Sidecar) -> None:
        """The sidecar's notices into the outbox, with the save (no await between)."""
        for notice in notices_for(sidecar):
            self._outbox.setdefault(notice.notice_id, encode_notice(notice))

    def _notice(self, notice_id: str) -> Notice:
        return decode_notice(self._outbox[notice_id], f"memory:outbox/{notice_id}")

    async def enqueue(self, notice: Notice) -> bool:
        await checkpoint()
        if notice.notice_id in self._outbox:
            return False
        self._outbox[notice.notice_id] = encode_notice(notice)
        return True

    async def undispatched(self, limit: int) -> builtins.list[Notice]:
        await checkpoint()
        waiting = [n for n in self._outbox if n not in self._dispatched][:limit]
        return [self._notice(n) for n in waiting]

    async def dispatch(self, notice_id: str, endpoints: Sequence[str], at: datetime) -> None:
        await checkpoint()
        if notice_id not in self._outbox or notice_id in self._dispatched:
            return
        for endpoint in endpoints:
            self._deliveries.setdefault(
                (notice_id, endpoint), Delivery(notice_id=notice_id, endpoint=endpoint, next_at=at)
            )
        self._dispatched.add(notice_id)

    async def due(self, now: datetime, limit: int) -> builtins.list[DueDelivery]:
        await checkpoint()
        pending = sorted(
            (d for d in self._deliveries.values() if d.state is DeliveryState.PENDING),
            key=lambda d: d.next_at,
        )
        return [
            DueDelivery(notice=self._notice(d.notice_id), delivery=d)
            for d in pending
            if d.next_at <= now
        ][:limit]

    async def next_due(self) -> datetime | None:
        await checkpoint()
        pending = [d.next_at for d in self._deliveries.values() if d.state is DeliveryState.PENDING]
        return min(pending, default=None)

    async def record_attempt(self, delivery: Delivery) -> None:
        await checkpoint()
        key = (delivery.notice_id, delivery.endpoint)
        if key in self._deliveries:
            self._deliveries[key] = delivery

    async def notifications(self, run_id: str | None, limit: int) -> builtins.list[NoticeRecord]:
        await checkpoint()
        notices = [self._notice(n) for n in self._outbox]
        if run_id is not None:
            notices = [n for n in notices if n.run_id == run_id]
        return [
            NoticeRecord(
                notice=n,
                dispatched=n.notice_id in self._dispatched,
                deliveries=tuple(
                    d for (nid, _), d in sorted(self._deliveries.items()) if nid == n.notice_id
                ),
            )
            for n in notices[-limit:]
            if limit > 0
        ]

    async def consumed_by(self, approval_kb_id: str) -> str | None:
        await checkpoint()
        return self._consumed.get(check_kb_id(approval_kb_id))

    async def consumed_for(self, run_id: str) -> list[str]:
        await checkpoint()
        return sorted(k for k, holder in self._consumed.items() if holder == run_id)

    async def run_ids(self) -> list[str]:
        await checkpoint()
        return sorted(self._sidecars)

    async def page(self, after: str, limit: int, where: RunFilter) -> list[Sidecar | UnreadableRun]:
        await checkpoint()
        ids = sorted(r for r in self._sidecars if r.encode() > after.encode())
        return fill_page(self._loaded(ids), limit, where)

    def _loaded(self, run_ids: list[str]) -> Iterator[Sidecar | UnreadableRun]:
        for run_id in run_ids:
            try:
                data = self._sidecars[run_id]
                yield decode_stored_sidecar(data, run_id, f"memory:runs/{run_id}")
            except CorruptRecord as exc:
                yield unreadable(run_id, exc)


if TYPE_CHECKING:  # the stores satisfy the ports (checked by mypy, free at run time)
    from cutter.core.ports import KnowledgeBase, RunStore

    _kb: KnowledgeBase = InMemoryKnowledgeBase()
    _runs: RunStore = InMemoryRunStore()
