"""The ledger checked against its anchors on the embedded database (docs/ledger.md §8).

Three live runs in the daemon's SQLite database: doc-a closed (cut at entry 0), doc-b
rejected at SG_2 (cut at 1, rollback at 2), doc-c closed (cut at 3). The hash chain
alone accepts a ledger cut short, emptied, or rewritten and re-hashed from genesis;
checked against the runs' anchors each is found, and named by run. The damage is
done to the ``ledger`` table with its append-only triggers dropped and put back, as
someone holding the file could.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import anyio
import msgspec
import pytest
from click.testing import CliRunner

import cutter.core.mode
from cutter.assembly.embedded import embedded_config
from cutter.cli.ledger import verify_stores
from cutter.cli.main import main
from cutter.core.anchors import AnchorStatus, LedgerReport, anchor_of
from cutter.core.approvals import GatePolicy
from cutter.core.canonical import canonical, sha256_hex
from cutter.core.errors import StopCode
from cutter.core.kbdocs import CloseoutReport, Decision, closeout_doc_id
from cutter.core.ledger import CutEnvelope, LedgerEntry, LedgerEnvelope, decode_envelope, next_entry
from cutter.core.mode import Mode
from cutter.core.ports import KnowledgeBase
from cutter.core.route import Pin
from cutter.core.sidecar import Sidecar
from cutter.core.state_dir import StateDir
from cutter.core.states import RunState
from cutter.stores.sqlite.database import open_database
from cutter.stores.sqlite.target import SqliteLedger
from cutter.walk.anchoring import read_anchors
from cutter.walk.runner import Runner
from tests._harness import OPERATOR
from tests.pg._walk import write_approval

SAMPLE = resources.files("cutter").joinpath("samples/garden-charter.md").read_bytes()

Found = tuple[str, str, int, AnchorStatus, str]  # run, kind, seq, status, detail


@dataclass(frozen=True)
class Runs:
    state: Path  # the healthy state directory: copy it, never change it
    a: Sidecar  # closed
    b: Sidecar  # rejected at SG_2: cut, then rollback
    c: Sidecar  # closed


async def walk(runner: Runner, kb: KnowledgeBase, doc_id: str, sg2: Decision) -> Sidecar:
    sc = await runner.cut(doc_id, Mode.LIVE, started_by=OPERATOR)
    sc = await runner.resume(sc.run_id, await write_approval(kb, sc))
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
    return await runner.resume(sc.run_id, await write_approval(kb, sc, decision=sg2))


async def build(state: Path) -> tuple[Sidecar, Sidecar, Sidecar]:
    async with embedded_config(state, policy=GatePolicy()) as config:
        for doc_id in ("doc-a", "doc-b", "doc-c", "doc-d"):
            await config.target.sources.publish(doc_id, SAMPLE)  # type: ignore[attr-defined]
        async with Runner(config) as runner:
            a = await walk(runner, config.kb, "doc-a", Decision.APPROVE)
            b = await walk(runner, config.kb, "doc-b", Decision.REJECT)
            c = await walk(runner, config.kb, "doc-c", Decision.APPROVE)
    return a, b, c


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    state = tmp_path_factory.mktemp("anchors") / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cutter.core.mode, "__execution_enabled__", True)
        a, b, c = anyio.run(build, state)
    assert (a.state, b.state, c.state) == (
        RunState.CLOSEOUT_REPORTED,
        RunState.REJECTED,
        RunState.CLOSEOUT_REPORTED,
    )
    return Runs(state, a, b, c)


@pytest.fixture
def state(runs: Runs, tmp_path: Path) -> Path:
    """A copy of the healthy state directory, this test's to damage."""
    copy = tmp_path / "state"
    shutil.copytree(runs.state, copy)
    return copy


@contextmanager
def tampering(state: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the state directory's database with the ledger's append-only
    triggers out of the way, put back (as they were) on exit, the change committed:
    what an attacker with the file and the code can do."""
    with closing(sqlite3.connect(StateDir(state).database)) as conn:
        triggers = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'ledger'"
        ).fetchall()
        assert len(triggers) == 2
        with conn:
            for name, _ in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            yield conn
            for _, sql in triggers:
                conn.execute(sql)


def drop_entries_from(state: Path, seq: int) -> None:
    """The ledger cut back to the entries before ``seq``."""
    with tampering(state) as conn:
        conn.execute("DELETE FROM ledger WHERE seq >= ?", (seq,))


def envelopes_of(state: Path) -> list[LedgerEnvelope]:
    with closing(sqlite3.connect(StateDir(state).database)) as conn:
        rows = conn.execute("SELECT envelope FROM ledger ORDER BY seq").fetchall()
    return [decode_envelope(bytes(envelope)) for (envelope,) in rows]


def rewrite_chain(state: Path, envelopes: list[LedgerEnvelope]) -> None:
    """Write ``envelopes`` as a whole new ledger, chained and hashed from genesis exactly
    as cutter does: what an attacker with the file and the code can do."""
    head: LedgerEntry | None = None
    rows = []
    for envelope in envelopes:
        head = next_entry(head, envelope)
        body = canonical(envelope)
        rows.append((head.seq, head.prev_hash, head.entry_hash, body, sha256_hex(body)))
    with tampering(state) as conn:
        conn.execute("DELETE FROM ledger")
        conn.executemany(
            "INSERT INTO ledger (seq, prev_hash, entry_hash, envelope, envelope_sha)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )


async def chain_alone_holds(state: Path) -> None:
    """The check that existed before anchors: it accepts every damage below."""
    async with open_database(StateDir(state).database, create=False) as db:
        await SqliteLedger(db).verify()


def found(report: LedgerReport) -> list[Found]:
    return [(f.run_id, f.kind, f.seq, f.status, f.detail) for f in report.problems]


MISSING, CHANGED = AnchorStatus.MISSING, AnchorStatus.CHANGED
REHASHED = (
    "the entry holds this run's envelope under another entry_hash: an entry before it "
    "was changed, removed or inserted and the chain recomputed"
)


# -- a healthy ledger -------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_healthy_ledger_of_cuts_and_a_rollback_verifies(state: Path, runs: Runs) -> None:
    report = await verify_stores(state, None)
    assert report.ok
    assert report.chain_error is None
    assert [(f.run_id, f.kind, f.seq, f.status) for f in report.findings] == [
        (runs.a.run_id, "cut", 0, AnchorStatus.HOLDS),
        (runs.b.run_id, "cut", 1, AnchorStatus.HOLDS),
        (runs.b.run_id, "rollback", 2, AnchorStatus.HOLDS),
        (runs.c.run_id, "cut", 3, AnchorStatus.HOLDS),
    ]
    assert report.unanchored == ()
    async with embedded_config(state) as config:
        ledger = config.target.ledger
        assert isinstance(ledger, SqliteLedger)
        entries = await ledger.entries()
        kb = config.kb
        anchors = await read_anchors(kb)
        reports = [await kb.get(closeout_doc_id(run.run_id)) for run in (runs.a, runs.c)]
    assert report.head == entries[-1].entry_hash
    assert anchors == sorted((anchor_of(e) for e in entries), key=lambda a: (a.run_id, a.kind))
    # a closed run's pin, anchor and closeout report agree
    for run, report_doc in zip((runs.a, runs.c), reports, strict=True):
        assert isinstance(report_doc, CloseoutReport)
        assert report_doc.ledger_anchor is not None
        assert report_doc.ledger_anchor.entry_hash == run.pins[Pin.MANIFEST_ENVELOPE_ID]


# -- damage the chain alone accepts -------------------------------------------------------


@pytest.mark.anyio
async def test_dropping_the_newest_entry_names_the_run_it_belonged_to(
    state: Path, runs: Runs
) -> None:
    drop_entries_from(state, 3)
    await chain_alone_holds(state)
    report = await verify_stores(state, None)
    assert not report.ok
    assert found(report) == [(runs.c.run_id, "cut", 3, MISSING, "the ledger ends at entry 2")]


@pytest.mark.anyio
async def test_keeping_only_the_first_entry_names_every_later_run(state: Path, runs: Runs) -> None:
    drop_entries_from(state, 1)
    await chain_alone_holds(state)
    ends = "the ledger ends at entry 0"
    assert found(await verify_stores(state, None)) == [
        (runs.b.run_id, "cut", 1, MISSING, ends),
        (runs.b.run_id, "rollback", 2, MISSING, ends),
        (runs.c.run_id, "cut", 3, MISSING, ends),
    ]


@pytest.mark.anyio
async def test_an_emptied_ledger_names_every_run(state: Path, runs: Runs) -> None:
    drop_entries_from(state, 0)
    await chain_alone_holds(state)
    empty = "the ledger is empty"
    assert found(await verify_stores(state, None)) == [
        (runs.a.run_id, "cut", 0, MISSING, empty),
        (runs.b.run_id, "cut", 1, MISSING, empty),
        (runs.b.run_id, "rollback", 2, MISSING, empty),
        (runs.c.run_id, "cut", 3, MISSING, empty),
    ]


@pytest.mark.anyio
async def test_a_rewritten_entry_with_the_whole_chain_recomputed_is_found(
    state: Path, runs: Runs
) -> None:
    envelopes = envelopes_of(state)
    cut_b = envelopes[1]
    assert isinstance(cut_b, CutEnvelope)
    envelopes[1] = msgspec.structs.replace(cut_b, iu_count=cut_b.iu_count + 1)
    rewrite_chain(state, envelopes)
    await chain_alone_holds(state)
    report = await verify_stores(state, None)
    b, c = runs.b.run_id, runs.c.run_id
    assert found(report) == [
        (b, "cut", 1, CHANGED, f"the entry holds another envelope (run {b}, cut)"),
        (b, "rollback", 2, CHANGED, REHASHED),
        (c, "cut", 3, CHANGED, REHASHED),
    ]
    assert [(u.seq, u.run_id, u.kind) for u in report.unanchored] == [(1, b, "cut")]


@pytest.mark.anyio
async def test_a_removed_middle_entry_with_the_chain_recomputed_is_found(
    state: Path, runs: Runs
) -> None:
    envelopes = envelopes_of(state)
    del envelopes[1]  # run b's cut
    rewrite_chain(state, envelopes)
    await chain_alone_holds(state)
    b, c = runs.b.run_id, runs.c.run_id
    assert found(await verify_stores(state, None)) == [
        (b, "cut", 1, CHANGED, f"the entry holds another envelope (run {b}, rollback)"),
        (
            b,
            "rollback",
            2,
            CHANGED,
            f"the entry holds another envelope (run {c}, cut); its envelope is now entry 1",
        ),
        (c, "cut", 3, MISSING, "the ledger ends at entry 2; its envelope is now entry 2"),
    ]


@pytest.mark.anyio
async def test_an_entry_edited_in_place_breaks_the_chain_and_its_anchor(
    state: Path, runs: Runs
) -> None:
    with tampering(state) as conn:
        [(envelope,)] = conn.execute("SELECT envelope FROM ledger WHERE seq = 3").fetchall()
        edited = bytes(envelope).replace(b'"iu_count":8', b'"iu_count":9')
        assert edited != envelope
        conn.execute("UPDATE ledger SET envelope = ? WHERE seq = 3", (edited,))
    report = await verify_stores(state, None)
    assert (
        report.chain_error == "ledger entry 3: entry_hash does not match the stored envelope bytes"
    )
    assert [(f.run_id, f.seq, f.status) for f in report.problems] == [(runs.c.run_id, 3, CHANGED)]


# -- closeout ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_whose_cut_vanished_before_closeout_does_not_report_closed(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    async with embedded_config(state, policy=GatePolicy()) as config, Runner(config) as runner:
        kb = config.kb
        sc = await runner.cut("doc-d", Mode.LIVE, started_by=OPERATOR)
        sc = await runner.resume(sc.run_id, await write_approval(kb, sc))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        drop_entries_from(state, 4)  # its cut, entry 4
        done = await runner.resume(sc.run_id, await write_approval(kb, sc))
    assert done.state is RunState.FAILED
    assert done.stop is not None
    assert done.stop.code is StopCode.VERIFY_FAILED
    assert "ledger entry 4 of this run's cut missing" in done.stop.message


# -- the command ---------------------------------------------------------------------------


def test_verify_ledger_names_the_damaged_run_and_exits_1(state: Path, runs: Runs) -> None:
    cli = CliRunner()
    healthy = cli.invoke(main, ["verify-ledger", "--state-dir", str(state)])
    assert healthy.exit_code == 0, healthy.output
    assert "anchors: 4 recorded by 3 runs, 4 hold" in healthy.output
    assert "OK: the chain holds and every anchored entry is in place" in healthy.output

    drop_entries_from(state, 3)
    damaged = cli.invoke(main, ["verify-ledger", "--state-dir", str(state)])
    assert damaged.exit_code == 1
    assert damaged.output.splitlines()[-3:] == [
        f"run {runs.c.run_id} (document doc-c):",
        "  cut entry 3 MISSING: the ledger ends at entry 2",
        "FAILED: 1 anchored entry of 1 run missing or changed",
    ]

    as_json = cli.invoke(main, ["verify-ledger", "--json", "--state-dir", str(state)])
    assert as_json.exit_code == 1
    data = json.loads(as_json.output)
    assert data["ok"] is False
    assert [(f["run_id"], f["status"]) for f in data["findings"]][-1] == (runs.c.run_id, "missing")


def test_verify_ledger_of_a_missing_state_directory_is_a_typed_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["verify-ledger", "--state-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "E_INPUT: no state directory" in result.output
    assert "Traceback" not in result.output
