"""Runs whose stored record cannot be read: set aside, named with the reason, never
fatal to the others.

A sidecar that does not decode (a flipped byte, bad JSON, another schema, a
record that names another run) is ``CorruptRecord``; one that cannot be read at
all (an ``OSError`` from a store) is listed the same way. Listing runs (``cutter runs``, the
review page's inbox, start-up recovery) reads every sidecar; one such record must
not stop the daemon or hide the healthy runs. ``scan_runs`` reads them all and
returns the readable sidecars and, apart, one ``UnreadableRun`` per record it could
not read. Nothing is repaired or moved: the record stays exactly as found, for
``cutter doctor`` and a person to look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from cutter.core.errors import CorruptRecord, UnknownRun
from cutter.core.sidecar import Sidecar

if TYPE_CHECKING:
    from cutter.core.ports import RunStore


class UnreadableRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run whose sidecar cannot be read: its id, the error's code and its one line."""

    run_id: str
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunScan:
    runs: list[Sidecar]
    unreadable: list[UnreadableRun]


def unreadable(run_id: str, exc: CorruptRecord | OSError) -> UnreadableRun:
    """The ``UnreadableRun`` of a record that raised ``exc`` when read."""
    if isinstance(exc, CorruptRecord):
        return UnreadableRun(run_id=run_id, code=exc.code, reason=exc.message)
    why = exc.strerror or type(exc).__name__
    reason = CorruptRecord(f"run {run_id}", f"cannot be read: {why}").message
    return UnreadableRun(run_id=run_id, code=CorruptRecord.code, reason=reason)


async def scan_runs(store: RunStore) -> RunScan:
    """Every stored run, readable ones and unreadable ones apart (both by run id)."""
    runs: list[Sidecar] = []
    unreadable: list[UnreadableRun] = []
    for run_id in await store.run_ids():
        try:
            runs.append(await store.load(run_id))
        except UnknownRun:
            continue  # gone between the listing and the read
        except CorruptRecord as exc:
            unreadable.append(UnreadableRun(run_id=run_id, code=exc.code, reason=exc.message))
        except OSError as exc:  # a directory or a file this process may not read
            why = exc.strerror or type(exc).__name__
            unreadable.append(
                UnreadableRun(
                    run_id=run_id,
                    code=CorruptRecord.code,
                    reason=CorruptRecord(f"run {run_id}", f"cannot be read: {why}").message,
                )
            )
    return RunScan(runs=runs, unreadable=unreadable)
