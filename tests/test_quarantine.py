"""Listing runs sets aside what it cannot read (``cutter.core.quarantine``, issue 12 §4).

Any byte of one stored sidecar among several (the embedded database's ``runs``
rows), flipped any way: listing never raises, every
healthy run is listed as it was, and the damaged one is either listed apart as
unreadable (code and reason) or, when the flip left valid JSON of the right shape,
read as what it now says — unless it names another run, which is unreadable too
(never listed as that run). A flip of an ASCII byte's high bit can never decode: that
run is always unreadable. A sidecar of another schema is unreadable too."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
from hypothesis import example, given
from hypothesis import strategies as st

from cutter.core import codec
from cutter.core.mode import Mode
from cutter.core.quarantine import scan_runs
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.stores.sqlite.database import Database, open_now
from cutter.stores.sqlite.records import SqliteRunStore

AT = datetime(2026, 12, 6, tzinfo=UTC)


def sidecar(n: int) -> Sidecar:
    return Sidecar(
        run_id=f"run-{n:032x}",
        doc_id=f"doc-{n}",
        mode=Mode.DRY_RUN,
        started_by="operator-ann",
        created_at=AT,
        updated_at=AT,
        state=RunState.HALTED,
    )


RUNS = [sidecar(n) for n in range(1, 4)]
SIZE = len(codec.encode(RUNS[1]))
RUN_ID_AT = codec.encode(RUNS[1]).index(b'"run-') + 1  # the "r" of the damaged run's id


@contextmanager
def stored(root: Path) -> Iterator[tuple[SqliteRunStore, Database]]:
    db = open_now(root / "cutter.sqlite3")
    try:
        store = SqliteRunStore(db)

        async def save_all() -> None:
            for run in RUNS:
                await store.create(run)

        anyio.run(save_all)
        yield store, db
    finally:
        db.close()


def overwrite(db: Database, run_id: str, data: bytes) -> None:
    """Behind the store's back, as a damaged page or another tool would."""
    with closing(sqlite3.connect(db.path)) as conn, conn:
        conn.execute("UPDATE runs SET sidecar = ? WHERE run_id = ?", (data, run_id))


@given(at=st.integers(0, SIZE - 1), mask=st.integers(1, 255))
@example(at=0, mask=0x80)  # the opening brace
@example(at=SIZE - 1, mask=1)  # the closing brace
@example(at=RUN_ID_AT, mask=1)  # "sun-…": decodes, but names another run
def test_one_flipped_byte_is_set_aside_and_the_others_list(at: int, mask: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, stored(Path(tmp)) as (store, db):
        damaged = RUNS[1]
        data = bytearray(codec.encode(damaged))
        original = data[at]
        data[at] ^= mask
        overwrite(db, damaged.run_id, bytes(data))
        scan = anyio.run(scan_runs, store)
        healthy = [r for r in scan.runs if r.run_id != damaged.run_id]
        assert healthy == [RUNS[0], RUNS[2]]
        if scan.unreadable:
            [bad] = scan.unreadable
            assert (bad.run_id, bad.code) == (damaged.run_id, "E_CORRUPT_RECORD")
            assert f"runs/{damaged.run_id}" in bad.reason
            assert len(scan.runs) == 2
        else:
            assert len(scan.runs) == 3  # still valid: read as it now says
        if original < 0x80 and mask & 0x80:
            assert [u.run_id for u in scan.unreadable] == [damaged.run_id]


def test_a_sidecar_of_another_schema_is_unreadable(tmp_path: Path) -> None:
    with stored(tmp_path) as (store, db):
        other = codec.encode(RUNS[0]).replace(b'"schema":1', b'"schema":2')
        overwrite(db, RUNS[0].run_id, other)
        scan = anyio.run(scan_runs, store)
    assert [r.run_id for r in scan.runs] == [RUNS[1].run_id, RUNS[2].run_id]
    [bad] = scan.unreadable
    assert bad.run_id == RUNS[0].run_id
    assert "schema 2, not 1" in bad.reason
