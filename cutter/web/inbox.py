"""The inbox's rows, bounded: however many runs wait at a gate, the page shows the
``INBOX_ROWS`` that have waited longest and says how many wait in all.

The runs are read a page at a time (``RunStore.page``, filtered by the waiting
states), so neither the daemon's memory nor the HTML grows with the run store."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from cutter.core.policy import Policy
from cutter.core.ports import RunStore
from cutter.core.quarantine import UnreadableRun
from cutter.core.run_pages import RunFilter
from cutter.core.states import AWAITING
from cutter.web.pages import InboxRow, inbox_row

INBOX_ROWS = 200
READ_PAGE = 500


@dataclass(frozen=True, slots=True)
class Inbox:
    rows: tuple[InboxRow, ...]  # the longest waiting first
    waiting: int  # runs waiting at a gate, shown or not
    unreadable: tuple[UnreadableRun, ...]  # at most INBOX_ROWS, by run id


async def inbox(store: RunStore, policy: Policy, limit: int = INBOX_ROWS) -> Inbox:
    kept: list[tuple[float, str, InboxRow]] = []  # a max-heap by since: (-since, run id)
    waiting = 0
    bad: dict[str, UnreadableRun] = {}
    for state in sorted(AWAITING):
        where, after = RunFilter(state=state), ""
        while True:
            sidecars = await store.page(after, READ_PAGE, where)
            for sidecar in sidecars:
                if isinstance(sidecar, UnreadableRun):
                    if len(bad) < limit:
                        bad[sidecar.run_id] = sidecar
                    continue
                gate = sidecar.pending_gate
                row = (
                    None
                    if gate is None
                    else inbox_row(sidecar, policy.gate_rule(sidecar.doc_id, gate.gate))
                )
                if row is None:
                    continue
                waiting += 1
                entry = (-row.since.timestamp(), row.run_id, row)
                if len(kept) < limit:
                    heapq.heappush(kept, entry)
                elif entry > kept[0]:
                    heapq.heapreplace(kept, entry)
            if len(sidecars) < READ_PAGE:
                break
            after = sidecars[-1].run_id
    rows = sorted((row for _, _, row in kept), key=lambda r: (r.since, r.run_id))
    return Inbox(
        rows=tuple(rows),
        waiting=waiting,
        unreadable=tuple(sorted(bad.values(), key=lambda b: b.run_id)),
    )
