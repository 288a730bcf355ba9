"""``cutter doctor`` finds every planted damage and passes a healthy state directory
(issue 12 §4).

A real daemon leaves a state directory with every kind of record: a LIVE run walked
to its closeout (approvals consumed, ledger entries and anchors), a dry run waiting
at SG_2 and one waiting at SG_1. Stopped, the directory is copied once per case and
one record of its database damaged: a run's sidecar, a gate request doc (a flipped
byte, and a digit of its source sha changed, which still decodes but no longer hashes
to the recorded digest), an approval, a consumed approval its run does not record, a
ledger entry, the file itself (a page overwritten; an index that no longer matches
its table). Each is named, by kind and place, and the exit status is 1; the healthy
copy exits 0, also while a daemon owns the directory (the doctor reads only)."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.core.mode import Mode
from cutter.core.state_dir import StateDir
from cutter.core.states import RunState
from tests.daemon._db import execute, query
from tests.daemon._drive import add_document, approve, launch, start_run


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    state_dir = tmp_path_factory.mktemp("doctor") / "state"
    for doc_id in ("doc-live", "doc-sg2", "doc-sg1"):
        add_document(doc_id, state_dir=state_dir)
    daemon = launch(state_dir, "--enable-execution")
    try:
        live = anyio.run(start_run, daemon.socket, Mode.LIVE, "doc-live")
        live = anyio.run(approve, daemon.socket, live).run
        live = anyio.run(approve, daemon.socket, live).run
        assert live.state is RunState.CLOSEOUT_REPORTED, live
        sg2 = anyio.run(start_run, daemon.socket, Mode.DRY_RUN, "doc-sg2")
        sg2 = anyio.run(approve, daemon.socket, sg2).run
        assert sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sg2
        sg1 = anyio.run(start_run, daemon.socket, Mode.DRY_RUN, "doc-sg1")
        assert sg1.state is RunState.AWAITING_CUT_AUTHORIZATION, sg1
    finally:
        assert daemon.stop() == 0
    return {"state_dir": state_dir, "live": live.run_id, "sg2": sg2.run_id, "sg1": sg1.run_id}


def doctor(state_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", "--state-dir", str(state_dir), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def copy(walked: dict[str, object], tmp_path: Path) -> Path:
    target = tmp_path / "state"
    shutil.copytree(str(walked["state_dir"]), target, ignore=shutil.ignore_patterns("*.sock"))
    return target


def high_bit_flip(
    state_dir: Path, table: str, column: str, key: str, value: str, seed: int
) -> None:
    """One ASCII byte's high bit (seeded) of one row's blob: it can never decode after."""
    [(blob,)] = query(state_dir, f"SELECT {column} FROM {table} WHERE {key} = ?", (value,))
    assert isinstance(blob, bytes)
    data = bytearray(blob)
    at = random.Random(seed).choice([i for i, b in enumerate(data) if 0x20 < b < 0x80])
    data[at] ^= 0x80
    execute(state_dir, f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (bytes(data), value))


def kb_doc(state_dir: Path, kb_id: str) -> bytes:
    [(blob,)] = query(state_dir, "SELECT doc FROM kb_docs WHERE kb_id = ?", (kb_id,))
    assert isinstance(blob, bytes)
    return blob


def put_kb_doc(state_dir: Path, kb_id: str, data: bytes) -> None:
    execute(state_dir, "UPDATE kb_docs SET doc = ? WHERE kb_id = ?", (data, kb_id))


@pytest.mark.subprocess
def test_a_healthy_state_directory_passes_also_beside_its_daemon(
    walked: dict[str, object], tmp_path: Path
) -> None:
    state_dir = copy(walked, tmp_path)
    code, out = doctor(state_dir)
    assert code == 0, out
    assert "all records readable" in out
    assert "DAMAGED" not in out
    code, out = doctor(state_dir, "--json")
    report = json.loads(out)
    assert report["ok"] is True
    assert report["runs"] == 3
    assert report["requests"] == 5  # SG_1 and SG_2 of two runs, SG_1 of the third
    assert report["ledger_entries"] >= 1
    assert report["consumed"] == 3  # two of the live run, one of the run at SG_2
    daemon = launch(state_dir)  # owns the directory: the doctor still reads it
    try:
        assert doctor(state_dir)[0] == 0
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_flipped_sidecar_is_named(walked: dict[str, object], tmp_path: Path, seed: int) -> None:
    state_dir = copy(walked, tmp_path)
    run_id = str(walked["sg2"])
    high_bit_flip(state_dir, "runs", "sidecar", "run_id", run_id, seed)
    code, out = doctor(state_dir)
    assert code == 1, out
    assert f"DAMAGED run {run_id}: E_CORRUPT_RECORD" in out
    assert out.count("DAMAGED") == 1, out


@pytest.mark.parametrize("seed", [4, 5, 6, 7])
def test_a_flipped_request_doc_is_named(
    walked: dict[str, object], tmp_path: Path, seed: int
) -> None:
    state_dir = copy(walked, tmp_path)
    run_id = str(walked["sg1"])
    kb_id = f"runs/{run_id}/gates/SG_1/request"
    data = bytearray(kb_doc(state_dir, kb_id))
    rng = random.Random(seed)
    at = rng.randrange(len(data))
    data[at] ^= rng.randrange(1, 256)  # any flip: undecodable, or no longer the request
    put_kb_doc(state_dir, kb_id, bytes(data))
    code, out = doctor(state_dir)
    assert code == 1, out
    assert f"DAMAGED request {kb_id}:" in out


def test_a_request_doc_that_decodes_but_was_changed_is_named(
    walked: dict[str, object], tmp_path: Path
) -> None:
    state_dir = copy(walked, tmp_path)
    run_id = str(walked["sg2"])
    kb_id = f"runs/{run_id}/gates/SG_2/request"
    doc = json.loads(kb_doc(state_dir, kb_id))
    sha = doc["subject"]["source_sha"]
    doc["subject"]["source_sha"] = ("1" if sha[0] != "1" else "2") + sha[1:]
    put_kb_doc(state_dir, kb_id, json.dumps(doc, separators=(",", ":")).encode())
    code, out = doctor(state_dir)
    assert code == 1, out
    assert (
        f"DAMAGED request {kb_id}: GATE_REQUEST_DAMAGED: run {run_id} SG_2: the request at" in out
    )


def test_a_flipped_approval_and_consumptions_no_run_records_are_named(
    walked: dict[str, object], tmp_path: Path
) -> None:
    state_dir = copy(walked, tmp_path)
    run_id = str(walked["live"])
    [first, _] = [
        str(r[0])
        for r in query(
            state_dir,
            "SELECT kb_id FROM kb_docs WHERE kb_id LIKE ? ORDER BY kb_id",
            (f"approvals/{run_id}/%",),
        )
    ]
    high_bit_flip(state_dir, "kb_docs", "doc", "kb_id", first, 8)
    # A consumption the run at SG_1 never recorded, and one of a run that is not there.
    waiting = str(walked["sg1"])
    for approval, run in ((f"approvals/{waiting}/SG_1-x", waiting), ("approvals/gone", "run-gone")):
        execute(
            state_dir,
            "INSERT INTO consumed_approvals (approval_kb_id, run_id, consumed_at)"
            " VALUES (?, ?, '2026-12-06T00:00:00+00:00')",
            (approval, run),
        )
    code, out = doctor(state_dir)
    assert code == 1, out
    assert f"DAMAGED approval {first}: E_CORRUPT_RECORD" in out
    assert (
        f"DAMAGED consumed approvals/{waiting}/SG_1-x: E_CORRUPT_RECORD: consumed by run "
        f"{waiting}, which does not record using it" in out
    )
    assert "DAMAGED consumed approvals/gone: E_CORRUPT_RECORD: consumed by run run-gone," in out
    assert out.count("DAMAGED") == 3, out


@pytest.mark.parametrize("seed", [10, 11])
def test_a_flipped_ledger_byte_is_named(
    walked: dict[str, object], tmp_path: Path, seed: int
) -> None:
    state_dir = copy(walked, tmp_path)
    [(trigger,)] = query(state_dir, "SELECT sql FROM sqlite_master WHERE name = 'ledger_no_update'")
    execute(state_dir, "DROP TRIGGER ledger_no_update")  # the ledger is append-only
    high_bit_flip(state_dir, "ledger", "envelope", "seq", "0", seed)
    execute(state_dir, str(trigger))
    code, out = doctor(state_dir)
    assert code == 1, out
    assert "DAMAGED ledger" in out


def test_an_overwritten_page_names_the_database_file(
    walked: dict[str, object], tmp_path: Path
) -> None:
    """A damaged page is found when the doctor opens the file (``quick_check``) and
    reported, not raised: one line naming the file, exit 1."""
    state_dir = copy(walked, tmp_path)
    path = StateDir(state_dir).database
    assert not path.with_name(path.name + "-wal").exists()  # checkpointed at close
    [(page_size,)] = query(state_dir, "PRAGMA page_size")
    [(root,)] = query(state_dir, "SELECT rootpage FROM sqlite_master WHERE name = 'runs'")
    assert isinstance(page_size, int)
    assert isinstance(root, int)
    with path.open("r+b") as db:
        db.seek((root - 1) * page_size)
        db.write(b"\xa5" * page_size)
    code, out = doctor(state_dir)
    assert code == 1, out
    assert f"DAMAGED database {path}: E_STORAGE_CORRUPT:" in out
    assert out.count("DAMAGED") == 1, out


def test_an_index_that_no_longer_matches_its_table_is_named(
    walked: dict[str, object], tmp_path: Path
) -> None:
    """``quick_check`` passes (every page reads); ``integrity_check`` compares the
    index with its table and the doctor names the file."""
    state_dir = copy(walked, tmp_path)
    path = StateDir(state_dir).database
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = 'CREATE INDEX runs_page_by_doc"
            " ON runs (run_id, doc_id)' WHERE name = 'runs_page_by_doc'"
        )
        conn.commit()
    assert query(state_dir, "PRAGMA quick_check") == [("ok",)]
    code, out = doctor(state_dir)
    assert code == 1, out
    assert f"DAMAGED database {path}: E_STORAGE_CORRUPT:" in out
    assert "runs_page_by_doc" in out


def test_no_state_directory_no_database_or_an_old_one_is_one_typed_line(tmp_path: Path) -> None:
    code, out = doctor(tmp_path / "nothing")
    assert code == 1
    assert "E_INPUT" in out
    code, out = doctor(tmp_path)  # a directory, no database in it: nothing is made
    assert (code, out.count("\n")) == (1, 1), out
    assert f"E_INPUT: no database {tmp_path / 'cutter.sqlite3'}" in out
    assert not (tmp_path / "cutter.sqlite3").exists()
    (tmp_path / "kb").mkdir()  # what the file stores of an earlier cutter left
    code, out = doctor(tmp_path)
    assert (code, out.count("\n")) == (1, 1), out
    assert "E_STATE_DIR_UNUSABLE" in out
    assert "file stores of an earlier cutter (kb)" in out
