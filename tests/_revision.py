"""Saving runs in tests past the stores' compare-and-save (``cutter.core.run_revision``).

A store saves a sidecar only over the revision before it, so a test that puts a run
back to an earlier record (a crash), forges one, or saves the same run twice names
the revision it saves over."""

from __future__ import annotations

from typing import Any

import msgspec

from cutter.core.ports import RunStore
from cutter.core.sidecar import Sidecar


def next_revision(sidecar: Sidecar, **changes: Any) -> Sidecar:
    """``sidecar`` with ``changes``, one revision later: what a save of it follows."""
    return msgspec.structs.replace(sidecar, revision=sidecar.revision + 1, **changes)


async def over_stored(store: RunStore, sidecar: Sidecar) -> Sidecar:
    """``sidecar`` as the revision after the one ``store`` holds for its run, whatever
    record that is: what a crash or a forger leaves behind."""
    stored = await store.load(sidecar.run_id)
    return msgspec.structs.replace(sidecar, revision=stored.revision + 1)
