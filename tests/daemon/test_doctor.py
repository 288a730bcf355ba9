"""``cutter doctor`` finds every planted damage and passes a healthy state directory
(issue 12 §4).

A real daemon leaves a state directory with every kind of record: a LIVE run walked
to its closeout (approvals consumed, ledger entries and anchors), a dry run waiting
at SG_2 and one waiting at SG_1. Stopped, the directory is copied once per case and
one record damaged: a run's sidecar, a gate request doc (a flipped byte, and a digit
of its source sha changed, which still decodes but no longer hashes to the recorded
digest), a consumed approval, a consumption record, the ledger. Each is named, by
kind and place, and the exit status is 1; the healthy copy exits 0, also while a
daemon owns the directory (the doctor reads only)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from cutter.cli import main
from cutter.mode import Mode
from cutter.states import RunState
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


def high_bit_flip(path: Path, seed: int) -> None:
    """One ASCII byte's high bit (seeded): the file can never decode afterwards."""
    data = bytearray(path.read_bytes())
    at = random.Random(seed).choice([i for i, b in enumerate(data) if 0x20 < b < 0x80])
    data[at] ^= 0x80
    path.write_bytes(bytes(data))


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
    assert report["journal"] == 3
    daemon = launch(state_dir)  # owns the directory: the doctor still reads it
    try:
        assert doctor(state_dir)[0] == 0
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_flipped_sidecar_is_named(walked: dict[str, object], tmp_path: Path, seed: int) -> None:
    state_dir = copy(walked, tmp_path)
    run_id = str(walked["sg2"])
    high_bit_flip(state_dir / "runs" / "runs" / f"{run_id}.json", seed)
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
    path = state_dir / "kb" / "runs" / run_id / "gates" / "SG_1" / "request.json"
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    at = rng.randrange(len(data))
    data[at] ^= rng.randrange(1, 256)  # any flip: undecodable, or no longer the request
    path.write_bytes(bytes(data))
    code, out = doctor(state_dir)
    assert code == 1, out
    assert f"DAMAGED request runs/{run_id}/gates/SG_1/request:" in out


def test_a_request_doc_that_decodes_but_was_changed_is_named(
    walked: dict[str, object], tmp_path: Path
) -> None:
    state_dir = copy(walked, tmp_path)
    run_id = str(walked["sg2"])
    path = state_dir / "kb" / "runs" / run_id / "gates" / "SG_2" / "request.json"
    doc = json.loads(path.read_bytes())
    sha = doc["subject"]["source_sha"]
    doc["subject"]["source_sha"] = ("1" if sha[0] != "1" else "2") + sha[1:]
    path.write_text(json.dumps(doc, separators=(",", ":")))
    code, out = doctor(state_dir)
    assert code == 1, out
    assert (
        f"DAMAGED request runs/{run_id}/gates/SG_2/request: GATE_REQUEST_DAMAGED: "
        f"run {run_id} SG_2: the request at" in out
    )


def test_a_flipped_approval_and_consumption_record_are_named(
    walked: dict[str, object], tmp_path: Path
) -> None:
    state_dir = copy(walked, tmp_path)
    run_id = str(walked["live"])
    [approval, _] = sorted((state_dir / "kb" / "approvals" / run_id).iterdir())
    high_bit_flip(approval, 8)
    [record, *_] = sorted((state_dir / "runs" / "consumed").iterdir())
    high_bit_flip(record, 9)
    code, out = doctor(state_dir)
    assert code == 1, out
    kb_id = f"approvals/{run_id}/{approval.name.removesuffix('.json')}"
    assert f"DAMAGED approval {kb_id}: E_CORRUPT_RECORD" in out
    assert f"DAMAGED journal {record}: E_CORRUPT_RECORD" in out


@pytest.mark.parametrize("seed", [10, 11])
def test_a_flipped_ledger_byte_is_named(
    walked: dict[str, object], tmp_path: Path, seed: int
) -> None:
    state_dir = copy(walked, tmp_path)
    [ledger] = [p for p in (state_dir / "target" / "ledger").rglob("*") if p.is_file()]
    high_bit_flip(ledger, seed)
    code, out = doctor(state_dir)
    assert code == 1, out
    assert "DAMAGED ledger" in out


def test_no_state_directory_is_one_typed_line(tmp_path: Path) -> None:
    code, out = doctor(tmp_path / "nothing")
    assert code == 1
    assert "E_INPUT" in out
