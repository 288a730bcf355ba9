"""Listing runs sets aside what it cannot read (``cutter.quarantine``, issue 12 §4).

Any byte of one sidecar among several, flipped any way: listing never raises, every
healthy run is listed as it was, and the damaged one is either listed apart as
unreadable (code and reason) or, when the flip left valid JSON of the right shape,
read as what it now says. A flip of an ASCII byte's high bit can never decode: that
run is always unreadable. A sidecar of another schema is unreadable too."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import anyio
from hypothesis import example, given
from hypothesis import strategies as st

from cutter import codec
from cutter.mode import Mode
from cutter.quarantine import scan_runs
from cutter.sidecar import Sidecar
from cutter.states import RunState
from cutter.stores.files import FileRunStore

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


def stored(root: Path) -> FileRunStore:
    store = FileRunStore(root)
    (root / "runs").mkdir(parents=True)
    for run in RUNS:
        store.sidecar_path(run.run_id).write_bytes(codec.encode(run))
    return store


@given(at=st.integers(0, SIZE - 1), mask=st.integers(1, 255))
@example(at=0, mask=0x80)  # the opening brace
@example(at=SIZE - 1, mask=1)  # the closing brace
def test_one_flipped_byte_is_set_aside_and_the_others_list(at: int, mask: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = stored(Path(tmp))
        damaged = RUNS[1]
        path = store.sidecar_path(damaged.run_id)
        data = bytearray(path.read_bytes())
        original = data[at]
        data[at] ^= mask
        path.write_bytes(bytes(data))
        scan = anyio.run(scan_runs, store)
        healthy = [r for r in scan.runs if r.run_id != damaged.run_id]
        assert healthy == [RUNS[0], RUNS[2]]
        if scan.unreadable:
            [bad] = scan.unreadable
            assert (bad.run_id, bad.code) == (damaged.run_id, "E_CORRUPT_RECORD")
            assert str(path) in bad.reason
            assert len(scan.runs) == 2
        else:
            assert len(scan.runs) == 3  # still valid: read as it now says
        if original < 0x80 and mask & 0x80:
            assert [u.run_id for u in scan.unreadable] == [damaged.run_id]


def test_a_sidecar_of_another_schema_is_unreadable(tmp_path: Path) -> None:
    store = stored(tmp_path)
    other = codec.encode(RUNS[0]).replace(b'"schema":1', b'"schema":2')
    store.sidecar_path(RUNS[0].run_id).write_bytes(other)
    scan = anyio.run(scan_runs, store)
    assert [r.run_id for r in scan.runs] == [RUNS[1].run_id, RUNS[2].run_id]
    [bad] = scan.unreadable
    assert bad.run_id == RUNS[0].run_id
    assert "schema 2, not 1" in bad.reason


def test_a_directory_in_place_of_a_sidecar_is_unreadable(tmp_path: Path) -> None:
    store = stored(tmp_path)
    odd = store.sidecar_path("run-" + "e" * 32)
    odd.mkdir()
    scan = anyio.run(scan_runs, store)
    assert scan.runs == RUNS
    [bad] = scan.unreadable
    assert (bad.run_id, bad.code) == (odd.name.removesuffix(".json"), "E_CORRUPT_RECORD")
    assert "cannot be read: Is a directory" in bad.reason
