"""Thousands of stored runs, made cheaply through the run store's own API (``create``),
not by walking: what the run list's paging is tested and measured against.

Ids are hex like real ones (``run-`` and 16 hex digits, so their order is not their
number's); every fifth run waits at SG_1 holding a document of its own (one open
run per document), the others ended in one of the terminal states, spread over
seven documents."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import anyio
import msgspec

from cutter.core.ports import RunStore
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from tests._harness import PAUSED_AT, paused_sidecar

ENDED = (RunState.FAILED, RunState.ABORTED, RunState.REJECTED, RunState.CLOSEOUT_REPORTED)


def run_id_of(n: int) -> str:
    return "run-" + hashlib.sha256(f"run {n}".encode()).hexdigest()[:16]


def nth_run(n: int) -> Sidecar:
    run = paused_sidecar(run_id_of(n), at=PAUSED_AT + timedelta(seconds=n))
    if n % 5 == 0:
        return msgspec.structs.replace(run, doc_id=f"doc-open-{n}")
    return msgspec.structs.replace(run, state=ENDED[n % len(ENDED)], doc_id=f"doc-{n % 7}")


def many_runs(count: int) -> list[Sidecar]:
    return [nth_run(n) for n in range(count)]


async def store_runs(store: RunStore, runs: list[Sidecar], at_once: int = 8) -> None:
    """Create every run, ``at_once`` at a time (a database store round-trips each)."""

    async def saver(share: list[Sidecar]) -> None:
        for run in share:
            await store.create(run)

    async with anyio.create_task_group() as tg:
        for k in range(at_once):
            tg.start_soon(saver, runs[k::at_once])


@contextmanager
def no_fsync() -> Iterator[None]:
    """File stores without fsync, while a test stores thousands of runs it does not
    crash (durability is not what it tests; 5,000 fsynced saves take a minute)."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real
