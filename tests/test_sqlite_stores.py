"""The embedded SQLite stores: what only SQLite has. What every store promises
(hostile ids refused, nothing written on a refusal, consumption exactly once, a
restart reading the same state, coroutines racing) is the one contract suite in
tests/pg/test_adapters.py, run on the in-memory, SQLite and PostgreSQL stores.

Here: a corrupt record named and left as found, consumption exactly once across
processes, the kill switch, a ``kill -9`` mid-write leaving a readable store, damaged
rows named and left alone, ids refused at publish. Records are damaged with SQL on
the database file, as any SQLite tool could (``tests._harness.hand_edit``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec
import pytest

from cutter.core import codec
from cutter.core.canonical import sha256_hex
from cutter.core.errors import (
    CorruptRecord,
    StopCode,
)
from cutter.core.kbdocs import StopDoc
from cutter.core.ledger import GENESIS_HASH, ChainBroken, verify_chain
from cutter.core.records import IUState, SourceVersion
from cutter.core.sidecar import Sidecar
from cutter.core.state_dir import StateDir
from cutter.stores.sqlite.database import Database
from cutter.stores.sqlite.records import SqliteKillSwitch, SqliteKnowledgeBase, SqliteRunStore
from cutter.stores.sqlite.target import SqliteIUStore, SqliteLedger, SqliteSources
from tests._harness import hand_edit, open_database_now, paused_sidecar, stored_rows
from tests.pg._stores import article_source, nth_envelope, populate

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def sidecar(run_id: str = "run-a", *, started_by: str = "operator") -> Sidecar:
    """A run paused at SG_1, holding a document of its own (one open run per document)."""
    run = paused_sidecar(run_id, started_by=started_by)
    return msgspec.structs.replace(run, doc_id=f"doc-of-{run_id}")


def stop_doc() -> StopDoc:
    return StopDoc(
        run_id="run-a", doc_id="doc-1", code=StopCode.DRIFT, message="moved", error_id=None, at=T0
    )


# -- SQLite only: a corrupt record is named and left as found ---------------------------

GOOD_SIDECAR = codec.encode(sidecar())
GOOD_DOC = codec.encode(stop_doc())
BROKEN: dict[str, bytes] = {
    "truncated": GOOD_SIDECAR[: len(GOOD_SIDECAR) // 2],
    "empty": b"",
    "garbage": b"\x00\xff not json \xfe",
    "json-array": b"[1, 2, 3]",
    "bad-enum": GOOD_DOC.replace(b"STOP_DRIFT", b"STOP_NOT_A_CODE"),
}
NOT_A_SIDECAR = {**BROKEN, "a-kb-doc": GOOD_DOC}
NOT_A_KB_DOC = {**BROKEN, "a-sidecar": GOOD_SIDECAR, "doc-truncated": GOOD_DOC[:-1]}


@pytest.mark.parametrize("content", NOT_A_SIDECAR.values(), ids=NOT_A_SIDECAR.keys())
async def test_a_corrupt_sidecar_is_named_left_as_found_and_still_listed(
    tmp_path: Path, content: bytes
) -> None:
    store = SqliteRunStore(open_database_now(tmp_path))
    await store.create(sidecar("run-a"))
    sql = "UPDATE runs SET sidecar = ? WHERE run_id = ?"
    assert hand_edit(store.db.path, sql, content, "run-a") == 1
    before = stored_rows(store.db.path)
    with pytest.raises(CorruptRecord) as info:
        await store.load("run-a")
    assert "run-a" in info.value.location
    assert info.value.code == "E_CORRUPT_RECORD"
    assert await store.run_ids() == ["run-a"]  # not hidden either
    assert stored_rows(store.db.path) == before


@pytest.mark.parametrize("content", NOT_A_KB_DOC.values(), ids=NOT_A_KB_DOC.keys())
async def test_a_corrupt_kb_doc_is_named_and_left_as_found(tmp_path: Path, content: bytes) -> None:
    kb = SqliteKnowledgeBase(open_database_now(tmp_path))
    await kb.put("runs/run-a/stop", stop_doc())
    sql = "UPDATE kb_docs SET doc = ? WHERE kb_id = ?"
    assert hand_edit(kb.db.path, sql, content, "runs/run-a/stop") == 1
    before = stored_rows(kb.db.path)
    with pytest.raises(CorruptRecord) as info:
        await kb.get("runs/run-a/stop")
    assert "runs/run-a/stop" in info.value.location
    assert await kb.list("") == ["runs/run-a/stop"]
    assert stored_rows(kb.db.path) == before


async def test_a_replayed_kb_doc_rewrites_nothing(tmp_path: Path) -> None:
    kb = SqliteKnowledgeBase(open_database_now(tmp_path))
    await kb.put("runs/run-a/stop", stop_doc())
    before = stored_rows(kb.db.path)
    await kb.put("runs/run-a/stop", stop_doc())
    assert stored_rows(kb.db.path) == before  # not even its updated_at


# -- SQLite only: processes race for approvals ------------------------------------------

RACES = 150  # approvals the processes fight over, in the same order, so many collide


def race_approval(n: int) -> str:
    return f"runs/run-x/gates/SG_1/approvals/a{n:03d}"


RACER = """
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec

from cutter.core.errors import ApprovalConsumedAlready
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.sidecar import ApprovalUse, Sidecar
from cutter.stores.sqlite.database import open_now
from cutter.stores.sqlite.records import SqliteRunStore
from cutter.core.states import RunState

path, run_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = datetime.now(UTC)
db = open_now(Path(path))
store = SqliteRunStore(db)
sidecar = Sidecar(run_id=run_id, doc_id=f"doc-{run_id}", mode=Mode.DRY_RUN, started_by="op",
                  created_at=now, updated_at=now, state=RunState.RUNNING)


async def race() -> None:
    held = sidecar
    for n in range(count):
        approval = f"runs/run-x/gates/SG_1/approvals/a{n:03d}"
        use = ApprovalUse(approval_kb_id=approval, approver="alice",
                          decision=Decision.APPROVE, peer=None, consumed_at=now)
        advanced = msgspec.structs.replace(held, revision=held.revision + 1)
        try:
            await store.save_consuming(advanced, use)
        except ApprovalConsumedAlready:
            continue
        held = advanced
        print(approval, flush=True)


anyio.run(store.create, sidecar)
print("ready", flush=True)
sys.stdin.readline()
anyio.run(race)
db.close()
"""


@pytest.mark.subprocess
def test_processes_racing_for_approvals_consume_each_exactly_once(tmp_path: Path) -> None:
    path = StateDir(tmp_path).database
    open_database_now(tmp_path)  # made and migrated before the racers start
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), f"run-{n}", str(RACES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        for n in range(4)
    ]
    won: dict[str, list[str]] = {}
    try:
        for racer in racers:  # the barrier: all are set up and blocked on stdin
            assert racer.stdout is not None
            assert racer.stdout.readline() == "ready\n"
        for racer in racers:  # then released together
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        for n, racer in enumerate(racers):
            out, err = racer.communicate(timeout=300)
            assert racer.returncode == 0, err
            won[f"run-{n}"] = out.split()
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()

    claims = sorted(approval for approvals in won.values() for approval in approvals)
    assert claims == [race_approval(n) for n in range(RACES)]  # each won exactly once
    store = SqliteRunStore(open_database_now(tmp_path))
    for run_id, approvals in won.items():
        for approval in approvals:
            assert anyio.run(store.consumed_by, approval) == run_id
    assert anyio.run(store.run_ids) == sorted(won)  # each racer created its run


# -- SQLite only: the kill switch -------------------------------------------------------


async def test_kill_switch_engage_and_release_are_idempotent(tmp_path: Path) -> None:
    switch = SqliteKillSwitch(open_database_now(tmp_path))
    assert not await switch.engaged()
    await switch.engage("incident 42\nsee pager")
    assert await switch.engaged()
    reason = switch.db.value("SELECT reason FROM kill_switch WHERE id = 1")
    assert reason == "incident 42 see pager"  # one line
    await switch.engage("again")
    assert await switch.engaged()
    await switch.release()
    assert not await switch.engaged()
    await switch.release()
    assert not await switch.engaged()
    again = SqliteKillSwitch(open_database_now(tmp_path))  # a restart sees the same
    await switch.engage("down")
    assert await again.engaged()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param("DELETE FROM kill_switch", id="row-gone"),
        pytest.param("DROP TABLE kill_switch", id="table-gone"),
    ],
)
async def test_kill_switch_fails_closed_when_its_state_cannot_be_read(
    tmp_path: Path, damage: str
) -> None:
    switch = SqliteKillSwitch(open_database_now(tmp_path))
    hand_edit(switch.db.path, damage)
    assert await switch.engaged()


async def test_kill_switch_fails_closed_on_a_closed_database(tmp_path: Path) -> None:
    db = open_database_now(tmp_path)
    switch = SqliteKillSwitch(db)
    db.close()
    assert await switch.engaged()


# == target: sources, IUs, ledger ==========================================================


@dataclass
class Stores:
    db: Database
    sources: SqliteSources
    ius: SqliteIUStore
    ledger: SqliteLedger

    async def publish(self, doc_id: str, data: bytes) -> SourceVersion:
        return await self.sources.publish(doc_id, data)


def open_stores(state_dir: Path) -> Stores:
    """The target stores on the database of ``state_dir``; again on the same directory,
    a second open database on the same file: what a restart sees."""
    db = open_database_now(state_dir)
    return Stores(db, SqliteSources(db), SqliteIUStore(db), SqliteLedger(db))


@pytest.mark.subprocess
def test_a_kill_9_mid_write_leaves_a_readable_store(tmp_path: Path) -> None:
    """A child writes in a loop and says which writes returned; it is killed (SIGKILL)
    at some instruction of a later one. Everything acknowledged is there, the rest
    reads whole or not at all, and the stores carry on."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(StateDir(tmp_path).database)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    assert child.stdout is not None
    acknowledged = -1
    try:
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= 25:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert acknowledged >= 25

    async def check() -> None:
        stores = open_stores(tmp_path)
        entries = await stores.ledger.entries()
        assert verify_chain(entries) == await stores.ledger.verify()
        runs = [e.envelope.run_id for e in entries]
        assert runs[: acknowledged + 1] == [f"run-{i}" for i in range(acknowledged + 1)]
        for i in range(acknowledged + 1):
            rows = await stores.ius.change_set(f"cs-{i}")
            assert [r.sv_id for r in rows] == [f"sv-{i}"] * 2
            assert {r.state for r in rows} <= {IUState.ACTIVE, IUState.SUPERSEDED}  # enacted
        for doc_id in ("doc-0", "doc-1", "doc-2"):
            current = await stores.sources.current(doc_id)
            assert (await stores.sources.content(current.sv_id)).startswith(b"version ")
            rows = await stores.ius.rows(doc_id)
            assert len({r.change_set_id for r in rows if r.state is IUState.ACTIVE}) == 1
        last = await stores.ledger.append(nth_envelope(10_000))  # the stores carry on
        assert await stores.ledger.verify() == last.entry_hash

    anyio.run(check)


KILLED_WRITER = """
import sys
from pathlib import Path

import anyio

from cutter.core.ledger import CutEnvelope
from cutter.core.records import IURow, IUState
from cutter.stores.sqlite.database import open_now
from cutter.stores.sqlite.target import SqliteIUStore, SqliteLedger, SqliteSources

db = open_now(Path(sys.argv[1]))
sources, ius, ledger = SqliteSources(db), SqliteIUStore(db), SqliteLedger(db)


async def main() -> None:
    for i in range(100_000):
        doc_id = f"doc-{i % 3}"
        await sources.publish(doc_id, f"version {i}".encode() * 50, sv_id=f"sv-{i}")
        rows = [
            IURow(iu_id=f"iu-{i}-{n}", doc_id=doc_id, sv_id=f"sv-{i}", ordinal=n, label="x",
                  kind="unit", start=n, end=n + 1, region_sha=f"{n:064x}", body=b"x",
                  state=IUState.STAGED, change_set_id=f"cs-{i}")
            for n in range(2)
        ]
        await ius.write_staged(rows)
        await ius.enact(f"cs-{i}")
        await ledger.append(CutEnvelope(run_id=f"run-{i}", doc_id=doc_id, sv_id=f"sv-{i}",
                                        change_set_id=f"cs-{i}", manifest_digest="0" * 64,
                                        iu_count=2))
        print(i, flush=True)


anyio.run(main)
"""


# -- damaged rows are named and left as found -------------------------------------------


@dataclass(frozen=True)
class Victim:
    """A stored value to damage (by SQL), and the reads that must then report it."""

    name: str
    damage: Callable[[Stores, str], str]  # the statement; returns the name reads must give
    reads: Callable[[Stores, str], list[Callable[[], Awaitable[object]]]]


def _damage_backup(stores: Stores, backup_id: str) -> str:
    sql = "UPDATE backups SET payload = substr(payload, 1, 20) WHERE backup_id = ?"
    assert hand_edit(stores.db.path, sql, backup_id) == 1
    return f"backups/{backup_id}"


def _damage_version(stores: Stores, _backup_id: str) -> str:
    sv_id = current_sv(stores, "doc-2")
    sql = "UPDATE source_versions SET content = ? WHERE sv_id = ?"
    data = article_source(3, tag=" OTHER")  # same length, other bytes: the sha is wrong
    assert hand_edit(stores.db.path, sql, data, sv_id) == 1
    return f"source_versions/{sv_id}"


def _damage_ledger(stores: Stores, _backup_id: str) -> str:
    # The head: an append reads it (and only it) to chain the next entry.
    with_triggers_off(stores, "UPDATE ledger SET envelope = X'DEADBEEF' WHERE seq = 2")
    return "ledger/2"


def current_sv(stores: Stores, doc_id: str) -> str:
    value = stores.db.value("SELECT current_sv_id FROM documents WHERE doc_id = ?", (doc_id,))
    assert isinstance(value, str)
    return value


def with_triggers_off(stores: Stores, statement: str) -> None:
    """A hand edit of the append-only ledger: drop its guard, edit, put the guard back."""
    hand_edit(stores.db.path, "DROP TRIGGER ledger_no_update")
    assert hand_edit(stores.db.path, statement) == 1
    hand_edit(
        stores.db.path,
        "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger"
        " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END",
    )


VICTIMS = [
    Victim("backup", _damage_backup, lambda s, b: [lambda: s.ius.load_backup(b)]),
    Victim(
        "version bytes",
        _damage_version,
        lambda s, _b: [lambda: s.sources.content(current_sv(s, "doc-2"))],
    ),
    Victim(
        "ledger entry",
        _damage_ledger,
        lambda s, _b: [
            lambda: s.ledger.entries(),
            lambda: s.ledger.append(nth_envelope(9)),
        ],
    ),
]


@pytest.mark.parametrize("victim", VICTIMS, ids=lambda v: v.name)
async def test_a_damaged_row_is_corrupt_record_naming_it_and_is_left_alone(
    tmp_path: Path, victim: Victim
) -> None:
    stores = open_stores(tmp_path)
    backup_id = await populate(stores)
    name = victim.damage(stores, backup_id)
    before = stored_rows(stores.db.path)
    for read in victim.reads(stores, backup_id):
        with pytest.raises(CorruptRecord) as caught:
            await read()
        assert name in caught.value.location
        assert caught.value.code == "E_CORRUPT_RECORD"
    assert stored_rows(stores.db.path) == before  # reported, never repaired


async def test_what_the_damage_does_not_touch_still_reads(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    backup_id = await populate(stores)
    doc_2 = await stores.ius.rows("doc-2")
    _damage_backup(stores, backup_id)
    _damage_ledger(stores, backup_id)
    with pytest.raises(ChainBroken) as broken:  # verify reads the bytes, not the decode
        await stores.ledger.verify()
    assert broken.value.seq == 2
    assert await stores.ius.rows("doc-2") == doc_2
    assert await stores.ius.enact("cs-other") == 3  # another document's cut still lands


async def test_a_ledger_entry_changed_but_still_decodable_breaks_the_chain(
    tmp_path: Path,
) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    with_triggers_off(
        stores,
        "UPDATE ledger SET envelope = CAST(replace(CAST(envelope AS TEXT),"
        " '\"iu_count\":12', '\"iu_count\":13') AS BLOB) WHERE seq = 0",
    )
    before = stored_rows(stores.db.path)
    with pytest.raises(ChainBroken) as caught:
        await stores.ledger.verify()
    assert caught.value.seq == 0
    assert stored_rows(stores.db.path) == before


async def test_verify_checks_the_stored_bytes_are_canonical(tmp_path: Path) -> None:
    """An entry whose hashes are right for its stored bytes, which are not canonical:
    ``entries`` decodes it, ``verify`` does not pass it."""
    stores = open_stores(tmp_path)
    body = b'{"kind":"cut", "run_id":"run-a","doc_id":"doc-1","sv_id":"sv-1",'
    body += b'"change_set_id":"cs-a","manifest_digest":"' + b"0" * 64 + b'","iu_count":1}'
    entry_hash = sha256_hex(bytes.fromhex(GENESIS_HASH) + body)
    sql = (
        "INSERT INTO ledger (seq, prev_hash, entry_hash, envelope, envelope_sha)"
        " VALUES (0, ?, ?, ?, ?)"
    )
    hand_edit(stores.db.path, sql, GENESIS_HASH, entry_hash, body, sha256_hex(body))
    [entry] = await stores.ledger.entries()
    assert entry.entry_hash == entry_hash
    with pytest.raises(ChainBroken, match="canonical"):
        await stores.ledger.verify()
