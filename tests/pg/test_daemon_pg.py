"""The real daemon on PostgreSQL (``--dsn``, acting as ``cutter_writer``), driven over
its socket: a LIVE walk to closeout, and kill -9 in the middle of leg A and of
lifecycle enact followed by a restart that recovers the run to the same end."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import asyncpg
import pytest

from cutter.core import codec
from cutter.core.codec import row_from_record
from cutter.core.kbdocs import ApprovalRefusal, PhaseDoc
from cutter.core.ledger import CutEnvelope, StoredEntry, decode_envelope, verify_stored
from cutter.core.mode import Mode
from cutter.core.principals import own_principal
from cutter.core.protocol import (
    AbortRun,
    Error,
    KillSwitchState,
    Ping,
    PolicyInfo,
    Pong,
    RunInfo,
    SetKillSwitch,
    SetPolicy,
    Start,
)
from cutter.core.records import IUState
from cutter.core.route import PHASES, Phase, Pin
from cutter.core.states import RunState
from cutter.discovery import TextDiscoverer
from cutter.runtime.failpoints import ENV as FAILPOINT_ENV
from tests.daemon._drive import (
    DOC_ID,
    OPERATOR,
    SAMPLE,
    WatchedDaemon,
    add_document,
    ask,
    check_rows_against_plan,
    expect,
    expected_kb_docs,
    finish,
    launch,
    list_runs,
    normalise,
    start_run,
    status,
    walk_until_death,
)
from tests.daemon.conftest import DaemonProcess
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

LIVE = "--enable-execution"
UNITS = len(TextDiscoverer().discover(SAMPLE.read_bytes()))


@pytest.fixture
def pg_daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts; any still running at the end are killed."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


async def _launch(
    state: Path, db: PgDatabase, daemons: list[DaemonProcess], *, failpoint: str | None = None
) -> WatchedDaemon:
    env = {FAILPOINT_ENV: failpoint} if failpoint is not None else None
    daemon = await anyio.to_thread.run_sync(
        functools.partial(launch, state, "--dsn", db.admin_dsn, LIVE, env=env)
    )
    daemons.append(daemon)
    return daemon


async def _fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def _consumed_reader(dsn: str) -> Callable[[], Awaitable[list[str]]]:
    async def consumed() -> list[str]:
        rows = await _fetch(dsn, "SELECT approval_kb_id FROM consumed_approvals ORDER BY 1")
        return [r["approval_kb_id"] for r in rows]

    return consumed


async def _check_closed(dsn: str, run_id: str) -> list[str]:
    """Everything a LIVE walk to closeout leaves in the database; the refusal codes."""
    (run_row,) = await _fetch(dsn, "SELECT state, sidecar FROM runs")
    sidecar = codec.decode_sidecar(bytes(run_row["sidecar"]), "runs")
    assert (sidecar.run_id, run_row["state"]) == (run_id, "CLOSEOUT_REPORTED")
    assert sidecar.state is RunState.CLOSEOUT_REPORTED
    assert sidecar.stop is None
    assert sidecar.phases_passed == PHASES
    change_set_id = sidecar.pins[Pin.CHANGE_SET_ID]

    # Exactly the sample's units, all active, all of this run's change set, as planned.
    records = await _fetch(
        dsn,
        "SELECT doc_id, sv_id, ordinal, iu_id, label, kind, start_byte, end_byte, region_sha,"
        " body, state, change_set_id FROM ius ORDER BY doc_id, sv_id, ordinal",
    )
    rows = [row_from_record(r) for r in records]
    assert len(rows) == UNITS
    assert {r.state for r in rows} == {IUState.ACTIVE}
    assert {(r.doc_id, r.change_set_id) for r in rows} == {(DOC_ID, change_set_id)}
    docs = {
        r["kb_id"]: codec.decode_kb_doc(bytes(r["doc"]), r["kb_id"])
        for r in await _fetch(dsn, "SELECT kb_id, doc FROM kb_docs")
    }
    cutplan = docs[sidecar.phase_docs[Phase.CUTPLAN]]
    assert isinstance(cutplan, PhaseDoc)
    check_rows_against_plan(rows, cutplan.manifest, SAMPLE.read_bytes())

    # The ledger verifies over its stored bytes and holds this one cut.
    ledger = await _fetch(
        dsn, "SELECT seq, prev_hash, entry_hash, envelope, envelope_sha FROM ledger ORDER BY seq"
    )
    head = verify_stored(
        [
            StoredEntry(
                r["seq"], r["prev_hash"], r["entry_hash"], bytes(r["envelope"]), r["envelope_sha"]
            )
            for r in ledger
        ]
    )
    (entry,) = ledger
    assert head == entry["entry_hash"] == sidecar.pins[Pin.MANIFEST_ENVELOPE_ID]
    envelope = decode_envelope(bytes(entry["envelope"]))
    assert isinstance(envelope, CutEnvelope)
    assert (envelope.run_id, envelope.change_set_id) == (run_id, change_set_id)
    assert (envelope.manifest_digest, envelope.iu_count) == (
        sidecar.pins[Pin.MANIFEST_DIGEST],
        UNITS,
    )

    # Two approvals consumed, once each, by this run: the ones the sidecar records.
    consumed = await _fetch(dsn, "SELECT approval_kb_id, run_id FROM consumed_approvals")
    assert len(consumed) == 2
    assert {r["run_id"] for r in consumed} == {run_id}
    assert sorted(r["approval_kb_id"] for r in consumed) == sorted(
        u.approval_kb_id for g in sidecar.gates for u in g.uses
    )
    (source,) = await _fetch(
        dsn,
        "SELECT cut_by FROM source_versions WHERE sv_id = $1",
        sidecar.pins[Pin.SOURCE_VERSION_ID],
    )
    assert source["cut_by"] == change_set_id

    kept = {
        (normalise(kb_id, run_id), type(doc).__name__)
        for kb_id, doc in docs.items()
        if not isinstance(doc, ApprovalRefusal)
    }
    assert kept == expected_kb_docs(live=True)
    return sorted(doc.code for doc in docs.values() if isinstance(doc, ApprovalRefusal))


async def test_daemon_on_postgres_walks_a_live_run_to_closeout(
    pg_db: PgDatabase, tmp_path: Path, pg_daemons: list[DaemonProcess]
) -> None:
    await anyio.to_thread.run_sync(functools.partial(add_document, dsn=pg_db.admin_dsn))
    daemon = await _launch(tmp_path / "state", pg_db, pg_daemons)
    assert daemon.logged("daemon_started")[0]["store"] == "postgresql"
    run = await start_run(daemon.socket, Mode.LIVE)
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    run, resent = await finish(daemon.socket, run, _consumed_reader(pg_db.admin_dsn))
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert resent == 1
    assert await anyio.to_thread.run_sync(daemon.stop) == 0
    assert await _check_closed(pg_db.admin_dsn, run.run_id) == ["APPROVAL_CONSUMED_ALREADY"]


@pytest.mark.parametrize(
    ("point", "step", "after_restart"),
    [
        ("leg_a:mid", 1, RunState.AWAITING_LIFECYCLE_AUTHORIZATION),
        ("enact:mid", 2, RunState.CLOSEOUT_REPORTED),
    ],
)
async def test_daemon_on_postgres_recovers_a_kill_9(
    point: str,
    step: int,
    after_restart: RunState,
    pg_db: PgDatabase,
    tmp_path: Path,
    pg_daemons: list[DaemonProcess],
) -> None:
    dsn = pg_db.admin_dsn
    state = tmp_path / "state"
    await anyio.to_thread.run_sync(functools.partial(add_document, dsn=dsn))
    armed = await _launch(state, pg_db, pg_daemons, failpoint=point)
    assert await walk_until_death(armed.socket) == step
    assert await anyio.to_thread.run_sync(armed.kill) == 137  # already dead: only reaped

    restarted = await _launch(state, pg_db, pg_daemons)
    (run,) = await list_runs(restarted.socket)
    assert restarted.recovering() == [run.run_id]
    await anyio.to_thread.run_sync(restarted.wait_stopped, run.run_id)
    run = await status(restarted.socket, run.run_id)
    assert run.state is after_restart, (run.stop_code, run.stop_message)
    run, resent = await finish(restarted.socket, run, _consumed_reader(dsn))
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert await anyio.to_thread.run_sync(restarted.stop) == 0
    assert await _check_closed(dsn, run.run_id) == ["APPROVAL_CONSUMED_ALREADY"] * resent


async def test_two_daemons_on_one_database_keep_one_open_run_per_document(
    pg_db: PgDatabase, tmp_path: Path, pg_daemons: list[DaemonProcess]
) -> None:
    """While a run of daemon A waits at SG_1, daemon B (its own state directory, the same
    database) refuses to start the document, waiting or not, naming A's run and writing
    nothing; it keeps serving, and once A's run is aborted B's start goes through."""
    dsn = pg_db.admin_dsn
    await anyio.to_thread.run_sync(functools.partial(add_document, dsn=dsn))
    first = await _launch(tmp_path / "state-a", pg_db, pg_daemons)
    second = await _launch(tmp_path / "state-b", pg_db, pg_daemons)
    holder = await start_run(first.socket, Mode.LIVE)
    assert holder.state is RunState.AWAITING_CUT_AUTHORIZATION
    kb_before = await _fetch(dsn, "SELECT kb_id FROM kb_docs ORDER BY 1")

    for daemon in (second, first):
        for wait in (True, False):
            start = Start(id="again", doc_id=DOC_ID, started_by="operator-cy", wait=wait)
            refused = expect(await ask(daemon.socket, start), Error)
            assert refused.code == "STOP_DOCUMENT_BUSY", refused
            assert holder.run_id in refused.message
    runs = await _fetch(dsn, "SELECT run_id, state FROM runs")
    assert [(r["run_id"], r["state"]) for r in runs] == [
        (holder.run_id, RunState.AWAITING_CUT_AUTHORIZATION.value)
    ]
    assert await _fetch(dsn, "SELECT kb_id FROM kb_docs ORDER BY 1") == kb_before
    assert isinstance(await ask(second.socket, Ping(id="still-there")), Pong)

    abort = AbortRun(id="abort", run_id=holder.run_id, reason="superseded", by=OPERATOR)
    aborted = expect(await ask(first.socket, abort), RunInfo).run
    assert aborted.state is RunState.ABORTED
    later = await start_run(second.socket, Mode.LIVE)
    assert later.run_id != holder.run_id
    assert later.state is RunState.AWAITING_CUT_AUTHORIZATION
    refused = expect(await ask(first.socket, Start(id="a", doc_id=DOC_ID, started_by="x")), Error)
    assert refused.code == "STOP_DOCUMENT_BUSY"
    assert later.run_id in refused.message
    for daemon in (first, second):
        assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_daemon_on_two_logins_walks_a_live_run_to_closeout(
    pg_db: PgDatabase, tmp_path: Path, pg_daemons: list[DaemonProcess]
) -> None:
    """``--dsn`` a cutter_writer login, ``--control-dsn`` a cutter_control login: the
    daemon consumes approvals, stores the ones it attests and walks to closeout, and
    says nothing about a shared login; one superuser DSN is the weaker setup, logged."""
    await anyio.to_thread.run_sync(functools.partial(add_document, dsn=pg_db.admin_dsn))
    logins = ("--dsn", pg_db.writer_dsn, "--control-dsn", pg_db.control_dsn, LIVE)
    daemon = await anyio.to_thread.run_sync(launch, tmp_path / "state", *logins)
    pg_daemons.append(daemon)
    assert daemon.logged("control_shares_login") == []
    run = await start_run(daemon.socket, Mode.LIVE)
    run, resent = await finish(daemon.socket, run, _consumed_reader(pg_db.admin_dsn))
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert resent == 1
    assert await _check_closed(pg_db.admin_dsn, run.run_id) == ["APPROVAL_CONSUMED_ALREADY"]
    # The kill switch and the policy, written through the control login too.
    for engage in (True, False):
        switched = await ask(daemon.socket, SetKillSwitch(id="k", engage=engage, reason="test"))
        assert isinstance(switched, KillSwitchState), switched
        assert switched.engaged is engage
    me = own_principal()
    policy = await ask(daemon.socket, SetPolicy(id="p", text=f'admins = ["{me}"]'))
    assert isinstance(policy, PolicyInfo), policy
    assert policy.version == 1
    assert await anyio.to_thread.run_sync(daemon.stop) == 0
    stored = await _fetch(
        pg_db.admin_dsn, "SELECT kb_id FROM kb_docs WHERE starts_with(kb_id, 'policy/')"
    )
    assert len(stored) == 2  # policy/current and its change record
    approvals = await _fetch(
        pg_db.admin_dsn, "SELECT kb_id FROM kb_docs WHERE starts_with(kb_id, 'approvals/')"
    )
    assert len(approvals) == 2  # stored through the control login: the writer could not

    one_login = await _launch(tmp_path / "one-login", pg_db, pg_daemons)
    (warning,) = one_login.logged("control_shares_login")
    (superuser,) = await _fetch(pg_db.admin_dsn, "SELECT session_user AS login")
    assert warning["login"] == superuser["login"]
    assert await anyio.to_thread.run_sync(one_login.stop) == 0
