"""One unreadable run record stops nothing (issue 12 §4), on the real daemon.

Three runs wait at SG_1; the daemon stops; one byte of one run's stored sidecar is
flipped (a seeded position; the high bit, so the bytes can never decode); the daemon
starts again. It serves: ``runs`` lists the damaged run apart as unreadable, with the code
and the reason, ``status`` of it is a typed error, and a healthy run is approved and
walks on. Every way out removes the socket file: SIGTERM, and a start-up that fails
after the socket was bound (a database file that is not one).
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from cutter.core.mode import Mode
from cutter.core.protocol import Error, ListRuns, ReviewOf, RunInfo, RunList, StatusOf
from cutter.core.route import Gate
from cutter.core.states import RunState
from tests.daemon._db import consumed_approvals, execute, query
from tests.daemon._drive import (
    ROOT,
    add_document,
    approval_for,
    approve,
    ask,
    expect,
    launch,
    start_run,
)

pytestmark = pytest.mark.subprocess

DOCS = ("doc-a", "doc-b", "doc-c")


def flip_one_byte(
    state_dir: Path, table: str, column: str, key: str, value: str, seed: int
) -> bytes:
    """Flip the high bit of one ASCII byte (chosen by ``seed``) of one row's blob:
    never valid JSON or UTF-8 afterwards. Returns the damaged bytes."""
    [(blob,)] = query(state_dir, f"SELECT {column} FROM {table} WHERE {key} = ?", (value,))
    assert isinstance(blob, bytes)
    data = bytearray(blob)
    offsets = [i for i, b in enumerate(data) if b < 0x80]
    at = random.Random(seed).choice(offsets)
    data[at] ^= 0x80
    execute(state_dir, f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (bytes(data), value))
    return bytes(data)


def stored_sidecar(state_dir: Path, run_id: str) -> object:
    return query(state_dir, "SELECT sidecar FROM runs WHERE run_id = ?", (run_id,))


@pytest.mark.parametrize("seed", [3, 12, 2026])
def test_a_flipped_sidecar_is_quarantined_and_the_rest_serves(tmp_path: Path, seed: int) -> None:
    state_dir = tmp_path / "state"
    for doc_id in DOCS:
        add_document(doc_id, state_dir=state_dir)
    first = launch(state_dir)
    try:
        runs = [anyio.run(start_run, first.socket, Mode.DRY_RUN, doc_id) for doc_id in DOCS]
    finally:
        assert first.stop() == 0
    assert all(r.state is RunState.AWAITING_CUT_AUTHORIZATION for r in runs)
    damaged, healthy = runs[1], (runs[0], runs[2])
    flip_one_byte(state_dir, "runs", "sidecar", "run_id", damaged.run_id, seed)
    before = stored_sidecar(state_dir, damaged.run_id)

    daemon = launch(state_dir)  # on main this start died with a CorruptRecord group
    try:
        listed = expect(anyio.run(ask, daemon.socket, ListRuns(id="runs")), RunList)
        assert sorted(r.run_id for r in listed.runs) == sorted(r.run_id for r in healthy)
        assert [u.run_id for u in listed.unreadable] == [damaged.run_id]
        bad = listed.unreadable[0]
        assert bad.code == "E_CORRUPT_RECORD"
        assert f"runs/{damaged.run_id}" in bad.reason
        # A state filter never hides the quarantined run.
        waiting = ListRuns(id="waiting", state=RunState.AWAITING_CUT_AUTHORIZATION)
        assert expect(anyio.run(ask, daemon.socket, waiting), RunList).unreadable == (bad,)
        reply = anyio.run(ask, daemon.socket, StatusOf(id="s", run_id=damaged.run_id))
        assert isinstance(reply, Error), reply
        assert reply.code == "E_CORRUPT_RECORD", reply
        # A healthy run goes on: approved at SG_1, it walks to SG_2.
        after = anyio.run(approve, daemon.socket, healthy[0]).run
        assert after.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, after
        assert after.waiting is not None
        assert after.waiting.gate is Gate.SG_2
        logged = daemon.named("run_unreadable")
        assert [e["run_id"] for e in logged] == [damaged.run_id]
    finally:
        assert daemon.stop() == 0
    assert not daemon.socket.exists()
    assert stored_sidecar(state_dir, damaged.run_id) == before  # never repaired or moved


def test_a_start_that_fails_after_binding_leaves_no_socket(tmp_path: Path) -> None:
    """The database file is not one: opening it fails once the socket is bound, with
    one typed line naming the file."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    database = state_dir / "cutter.sqlite3"
    database.write_bytes(b"not a database, " * 512)
    done = subprocess.run(
        [sys.executable, "-m", "cutter", "daemon", "--state-dir", str(state_dir)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.decode().splitlines()
    assert line == f"Error: E_STORAGE_CORRUPT: damaged database {database}: file is not a database"
    assert not (state_dir / "daemon.sock").exists()
    assert database.read_bytes() == b"not a database, " * 512


def test_an_approval_over_the_socket_for_a_flipped_request_doc_is_refused(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    add_document("doc-a", state_dir=state_dir)
    daemon = launch(state_dir)
    try:
        run = anyio.run(start_run, daemon.socket, Mode.DRY_RUN, "doc-a")
        assert run.waiting is not None
        flip_one_byte(state_dir, "kb_docs", "doc", "kb_id", run.waiting.request_kb_id, 1206)
        reply = anyio.run(ask, daemon.socket, approval_for(run))
        assert isinstance(reply, Error), reply
        assert reply.code == "GATE_REQUEST_DAMAGED", reply
        review = anyio.run(ask, daemon.socket, ReviewOf(id="r", run_id=run.run_id))
        assert isinstance(review, Error), review
        assert review.code == "GATE_REQUEST_DAMAGED", review
        after = expect(anyio.run(ask, daemon.socket, StatusOf(id="s", run_id=run.run_id)), RunInfo)
        assert after.run == run  # still waiting, undecided
        assert consumed_approvals(state_dir) == []
    finally:
        assert daemon.stop() == 0
