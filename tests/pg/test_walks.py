"""Whole walks on PostgreSQL: both gates, dry runs, the live switch, replays, rollback,
grants and drift — each checked against the tables themselves, read as the superuser."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator

import anyio
import pytest

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.core import codec
from cutter.core.canonical import sha256_hex
from cutter.core.errors import ProductionExecutionNotAuthorized, StopCode
from cutter.core.kbdocs import Decision, PhaseDoc
from cutter.core.ledger import CutEnvelope, RollbackEnvelope
from cutter.core.mode import Mode
from cutter.core.ports import KnowledgeBase
from cutter.core.route import PHASES, Gate, Phase, Pin
from cutter.core.sidecar import DriftUnit, Sidecar
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.walk.phases import Services
from cutter.walk.phases.context import PhaseContext
from cutter.walk.phases.writes import cut_leg_a
from cutter.walk.runner import Runner
from tests._gates import UncheckedGates
from tests._harness import OPERATOR
from tests._revision import over_stored
from tests.pg._walk import (
    DOC_ID,
    N_IUS,
    SourcesDiscoverer,
    admin_execute,
    admin_fetch,
    kb_ids,
    publish_source,
    table_digest,
    write_approval,
)
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)


async def walk_to_closeout(runner: Runner, kb: KnowledgeBase, doc_id: str, mode: Mode) -> Sidecar:
    sc = await runner.cut(doc_id, mode, started_by=OPERATOR)
    assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION, sc.stop
    sc = await runner.resume(sc.run_id, await write_approval(kb, sc))
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
    sc = await runner.resume(sc.run_id, await write_approval(kb, sc))
    assert sc.state is RunState.CLOSEOUT_REPORTED, sc.stop
    return sc


async def ius_of(admin_dsn: str, doc_id: str) -> list[tuple[str, str, str]]:
    rows = await admin_fetch(
        admin_dsn,
        "SELECT sv_id, state, change_set_id FROM ius WHERE doc_id = $1 ORDER BY sv_id, ordinal",
        doc_id,
    )
    return [(r["sv_id"], r["state"], r["change_set_id"]) for r in rows]


async def stored_sidecar(admin_dsn: str, run_id: str) -> Sidecar:
    (row,) = await admin_fetch(
        admin_dsn, "SELECT state, sidecar FROM runs WHERE run_id = $1", run_id
    )
    sidecar = codec.decode_sidecar(bytes(row["sidecar"]), f"runs/{run_id}")
    assert row["state"] == sidecar.state.value
    return sidecar


# --- the live happy path ---------------------------------------------------------------


async def test_live_walk_through_both_gates_commits_every_record(
    pg_db: PgDatabase, live: None
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    version = await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await walk_to_closeout(runner, config.kb, DOC_ID, Mode.LIVE)
        entries = await config.target.ledger.entries()
        head = await config.target.ledger.verify()

    assert sc.stop is None
    assert sc.phases_passed == PHASES
    change_set_id = sc.pins[Pin.CHANGE_SET_ID]
    assert sc.pins[Pin.LIFECYCLE_ENACTED_COUNT] == N_IUS
    # the rows, read with a plain query as the superuser
    assert (
        await ius_of(pg_db.admin_dsn, DOC_ID) == [(version.sv_id, "active", change_set_id)] * N_IUS
    )
    (cut,) = await admin_fetch(
        pg_db.admin_dsn, "SELECT cut_by FROM source_versions WHERE sv_id = $1", version.sv_id
    )
    assert cut["cut_by"] == change_set_id
    # the ledger: one cut entry, and the chain holds over the stored bytes
    assert [type(e.envelope) for e in entries] == [CutEnvelope]
    (entry,) = entries
    assert entry.envelope.run_id == sc.run_id
    assert entry.envelope.change_set_id == change_set_id
    assert entry.envelope.manifest_digest == sc.pins[Pin.MANIFEST_DIGEST]
    assert head == entry.entry_hash
    # the KB: 11 phase docs, 2 sovereign requests, the runs index, the closeout
    run = sc.run_id
    assert await kb_ids(pg_db.admin_dsn, f"runs/{run}/phases/") == sorted(sc.phase_docs.values())
    assert len(sc.phase_docs) == len(PHASES) == 11
    assert await kb_ids(pg_db.admin_dsn, f"runs/{run}/gates/") == [
        f"runs/{run}/gates/SG_1/request",
        f"runs/{run}/gates/SG_2/request",
    ]
    assert await kb_ids(pg_db.admin_dsn, f"runs-index/{run}") == [f"runs-index/{run}"]
    assert await kb_ids(pg_db.admin_dsn, f"runs/{run}/closeout") == [f"runs/{run}/closeout"]
    assert await kb_ids(pg_db.admin_dsn, f"runs/{run}/stop") == []
    # the sidecar in runs is the one the runner returned
    assert await stored_sidecar(pg_db.admin_dsn, run) == sc
    consumed = await admin_fetch(
        pg_db.admin_dsn, "SELECT approval_kb_id, run_id FROM consumed_approvals ORDER BY 1"
    )
    assert [(r["approval_kb_id"], r["run_id"]) for r in consumed] == [
        (f"approvals/{run}/SG_1", run),
        (f"approvals/{run}/SG_2", run),
    ]


# --- a dry run commits nothing -----------------------------------------------------------


async def test_dry_walk_commits_nothing_to_the_target_tables(pg_db: PgDatabase) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    before = await table_digest(pg_db.admin_dsn)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await walk_to_closeout(runner, config.kb, DOC_ID, Mode.DRY_RUN)

    assert await table_digest(pg_db.admin_dsn) == before
    assert sc.mode is Mode.DRY_RUN
    assert sc.pins[Pin.LIFECYCLE_ENACTED_COUNT] == N_IUS
    assert sc.pins[Pin.LIFECYCLE_ENACTED] is True
    # the orchestrator's own records are written: they describe what live would do
    assert len(await kb_ids(pg_db.admin_dsn, f"runs/{sc.run_id}/phases/")) == 11
    assert len(await kb_ids(pg_db.admin_dsn, f"runs/{sc.run_id}/gates/")) == 2
    assert await kb_ids(pg_db.admin_dsn, f"runs-index/{sc.run_id}") == [f"runs-index/{sc.run_id}"]
    assert await stored_sidecar(pg_db.admin_dsn, sc.run_id) == sc


async def test_table_digest_sees_a_single_changed_byte(pg_db: PgDatabase) -> None:
    """The proof above is only as good as the digest: one byte of one row changes it."""
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    before = await table_digest(pg_db.admin_dsn)
    await admin_execute(pg_db.admin_dsn, "UPDATE source_versions SET cut_by = 'x'")
    after = await table_digest(pg_db.admin_dsn)
    assert {t for t in before if before[t] != after[t]} == {"source_versions"}


# --- LIVE while execution is off ---------------------------------------------------------


class LoopbackListener:
    """A TCP listener on 127.0.0.1 only, counting the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.accepted_event = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.server, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in sel.select()}
                if self._wake_r in ready:
                    return
                conn, _ = self.server.accept()
                conn.close()
                self.accepted += 1
                self.accepted_event.set()

    def __enter__(self) -> LoopbackListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wake_w.send(b"x")
        self._thread.join()
        for sock in (self.server, self._wake_r, self._wake_w):
            sock.close()


@pytest.fixture
def listener() -> Iterator[LoopbackListener]:
    with LoopbackListener() as server:
        yield server


async def test_live_is_refused_before_any_connection_while_execution_is_off(
    listener: LoopbackListener,
) -> None:
    assert cutter.core.mode.__execution_enabled__ is False
    dsn = f"postgresql://cutter_writer@127.0.0.1:{listener.port}/nowhere"
    async with pg_config(dsn, InMemoryDiscoverer.seeded(N_IUS)) as config, Runner(config) as runner:
        with pytest.raises(ProductionExecutionNotAuthorized):
            await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
    assert listener.accepted == 0
    # the listener does count: a connection now is seen
    stream = await anyio.connect_tcp("127.0.0.1", listener.port)
    await stream.aclose()
    assert await anyio.to_thread.run_sync(listener.accepted_event.wait, 10.0)
    assert listener.accepted == 1


# --- replay idempotency ------------------------------------------------------------------


async def test_leg_a_replayed_after_a_crash_writes_nothing_new(
    pg_db: PgDatabase, live: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        store = config.run_store
        saved: list[Sidecar] = []
        original_save, original_consuming = store.save, store.save_consuming

        async def recording_save(sidecar: Sidecar) -> None:
            saved.append(sidecar)
            await original_save(sidecar)

        async def recording_consuming(sidecar: Sidecar, use: object) -> None:
            saved.append(sidecar)
            await original_consuming(sidecar, use)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "save", recording_save)
        monkeypatch.setattr(store, "save_consuming", recording_consuming)
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        first = await runner.resume(sc.run_id, await write_approval(config.kb, sc))
        assert first.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        digest_first = await table_digest(pg_db.admin_dsn)

        # The process died right before cut_leg_a was recorded: the latest sidecar is
        # the one saved when SG_1's approval was consumed.
        before_leg_a = next(
            s
            for s in saved
            if s.state is RunState.RUNNING
            and s.phases_passed[-1:] == (Phase.GRANT_PROBE,)
            and s.gate(Gate.SG_1) is not None  # approved, not merely probed
        )
        await original_save(await over_stored(store, before_leg_a))
        replayed = await runner.resume(sc.run_id)
        assert replayed.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        leg_a_doc = await config.kb.get(replayed.phase_docs[Phase.CUT_LEG_A])
        entries = await config.target.ledger.entries()
        await config.target.ledger.verify()

        # the replay did run leg A again, and it found every row already there
        assert isinstance(leg_a_doc, PhaseDoc)
        assert leg_a_doc.note == f"0 staged IUs written ({N_IUS} already present)"
        assert replayed.gate(Gate.SG_2) != first.gate(Gate.SG_2)  # the gate opened anew
        assert replayed.pins == first.pins  # same change_set_id, same everything
        assert await table_digest(pg_db.admin_dsn) == digest_first  # rows and ledger
        assert [type(e.envelope) for e in entries] == [CutEnvelope]

        done = await runner.resume(sc.run_id, await write_approval(config.kb, replayed))
    assert done.state is RunState.CLOSEOUT_REPORTED
    assert (
        await ius_of(pg_db.admin_dsn, DOC_ID)
        == [(str(done.pins[Pin.SOURCE_VERSION_ID]), "active", str(done.pins[Pin.CHANGE_SET_ID]))]
        * N_IUS
    )


async def test_leg_a_body_run_twice_gives_the_same_change_set_and_rows(
    pg_db: PgDatabase, live: None
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        services = Services(
            target=config.target,
            kb=config.kb,
            discoverer=disc,
            grants=config.grants,
            clock=config.clock,
            gates=UncheckedGates(),
        )
        once = await cut_leg_a(PhaseContext(sc, services))
        digest_once = await table_digest(pg_db.admin_dsn)
        twice = await cut_leg_a(PhaseContext(sc, services))
    assert once.note == f"{N_IUS} staged IUs written (0 already present)"
    assert twice.note == f"0 staged IUs written ({N_IUS} already present)"
    assert once.pins == twice.pins
    assert await table_digest(pg_db.admin_dsn) == digest_once
    assert (
        await ius_of(pg_db.admin_dsn, DOC_ID)
        == [(str(sc.pins[Pin.SOURCE_VERSION_ID]), "staged", str(once.pins[Pin.CHANGE_SET_ID]))]
        * N_IUS
    )


# --- reject at SG_2 ----------------------------------------------------------------------


async def test_rejected_sg2_rolls_the_rows_back_to_the_backup_exactly(
    pg_db: PgDatabase, live: None
) -> None:
    older, newer = InMemoryDiscoverer.seeded(N_IUS - 1), InMemoryDiscoverer.seeded(N_IUS)
    disc = SourcesDiscoverer(older, newer)
    v1 = await publish_source(pg_db.admin_dsn, DOC_ID, older.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        earlier = await walk_to_closeout(runner, config.kb, DOC_ID, Mode.LIVE)
        v2 = await publish_source(pg_db.admin_dsn, DOC_ID, newer.source)
        assert v2.sv_id != v1.sv_id
        ius_before = (await table_digest(pg_db.admin_dsn))["ius"]

        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        sc = await runner.resume(sc.run_id, await write_approval(config.kb, sc))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert (await table_digest(pg_db.admin_dsn))["ius"] != ius_before  # leg A wrote
        reject = await write_approval(config.kb, sc, decision=Decision.REJECT)
        rejected = await runner.resume(sc.run_id, reject)
        entries = await config.target.ledger.entries()
        await config.target.ledger.verify()

    assert rejected.state is RunState.REJECTED
    assert rejected.stop_code == StopCode.APPROVAL_REJECTED
    assert (await table_digest(pg_db.admin_dsn))["ius"] == ius_before
    assert await ius_of(pg_db.admin_dsn, DOC_ID) == [
        (v1.sv_id, "active", str(earlier.pins[Pin.CHANGE_SET_ID]))
    ] * (N_IUS - 1)
    assert [(type(e.envelope), e.envelope.run_id) for e in entries] == [
        (CutEnvelope, earlier.run_id),
        (CutEnvelope, sc.run_id),
        (RollbackEnvelope, sc.run_id),
    ]
    rollback = entries[-1].envelope
    assert isinstance(rollback, RollbackEnvelope)
    assert rollback.backup_id == sc.pins[Pin.BACKUP_ID]
    (cut,) = await admin_fetch(
        pg_db.admin_dsn, "SELECT cut_by FROM source_versions WHERE sv_id = $1", v2.sv_id
    )
    assert cut["cut_by"] is None


# --- grant probe -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        pytest.param("REVOKE UPDATE ON ius FROM cutter_writer", ("lacks iu:update",), id="missing"),
        pytest.param(
            "GRANT DELETE ON ledger TO cutter_writer",
            ("holds more than it needs: ledger:delete",),
            id="extra",
        ),
        # backups is a target table too (docs/storage.md): a writer that may rewrite the
        # rollback data holds more than a cut needs.
        pytest.param(
            "GRANT UPDATE ON backups TO cutter_writer",
            ("holds more than it needs", "backup"),
            id="extra-on-backups",
        ),
    ],
)
async def test_grant_probe_stops_a_writer_without_exactly_its_grants_before_any_write(
    pg_db: PgDatabase, live: None, statement: str, named: tuple[str, ...]
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    await admin_execute(pg_db.admin_dsn, statement)
    before = await table_digest(pg_db.admin_dsn)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)

    assert sc.state is RunState.FAILED
    assert sc.stop_code == StopCode.GRANT_MISSING
    assert sc.stop is not None
    for part in named:
        assert part in sc.stop.message
    assert "cutter_writer" in sc.stop.message
    assert Phase.GRANT_PROBE not in sc.phases_passed
    assert sc.phases_passed == PHASES[: PHASES.index(Phase.GRANT_PROBE)]
    assert sc.gates == ()
    after = await table_digest(pg_db.admin_dsn)
    changed = sorted(t for t in before if before[t] != after[t])
    assert changed == [], f"a run stopped at grant_probe wrote to {changed}"


# --- drift during a pause ----------------------------------------------------------------


async def test_source_edited_during_the_sg1_pause_stops_the_run_with_drift(
    pg_db: PgDatabase, live: None
) -> None:
    older, newer = InMemoryDiscoverer.seeded(N_IUS), InMemoryDiscoverer.seeded(N_IUS - 1)
    disc = SourcesDiscoverer(older, newer)
    v1 = await publish_source(pg_db.admin_dsn, DOC_ID, older.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
        approval = await write_approval(config.kb, sc)
        v2 = await publish_source(pg_db.admin_dsn, DOC_ID, newer.source)  # the concurrent edit
        before = await table_digest(pg_db.admin_dsn)
        drifted = await runner.resume(sc.run_id, approval)

    assert drifted.state is RunState.FAILED
    assert drifted.stop_code == StopCode.DRIFT
    assert drifted.stop is not None
    assert "source_version_id" in drifted.stop.message
    # A new version is drift in which version is current; the pinned version's own
    # bytes are unchanged, so source_sha (a hash of those bytes) holds.
    drift = {d.pin: (d.before, d.after) for d in drifted.drift}
    assert drift == {"source_version_id": (v1.sv_id, v2.sv_id)}
    assert v2.sha256 != v1.sha256
    # nothing further was written; the approval was not consumed
    assert await table_digest(pg_db.admin_dsn) == before
    assert await ius_of(pg_db.admin_dsn, DOC_ID) == []
    assert await admin_fetch(pg_db.admin_dsn, "SELECT * FROM ledger") == []
    assert await admin_fetch(pg_db.admin_dsn, "SELECT * FROM consumed_approvals") == []
    assert await kb_ids(pg_db.admin_dsn, f"runs/{sc.run_id}/stop") == [f"runs/{sc.run_id}/stop"]
    assert await stored_sidecar(pg_db.admin_dsn, sc.run_id) == drifted


async def test_source_bytes_changed_in_place_during_the_sg1_pause_are_drift(
    pg_db: PgDatabase, live: None
) -> None:
    """An UPDATE of one stored byte that leaves the recorded sha256 alone: the gate
    hashes the bytes themselves, stops with STOP_DRIFT and consumes nothing."""
    disc = InMemoryDiscoverer.seeded(N_IUS)
    v1 = await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
        approval = await write_approval(config.kb, sc)
        await admin_execute(
            pg_db.admin_dsn,
            f"UPDATE source_versions SET content = set_byte(content, 0, 88) "
            f"WHERE sv_id = '{v1.sv_id}'",
        )
        before = await table_digest(pg_db.admin_dsn)
        drifted = await runner.resume(sc.run_id, approval)

    assert drifted.state is RunState.FAILED
    assert drifted.stop_code == StopCode.DRIFT
    assert [(d.pin, d.before) for d in drifted.drift] == [("source_sha", v1.sha256)]
    assert drifted.drift[0].after == sha256_hex(b"X" + disc.source[1:])
    # The stop names the unit the byte is in, read from the bytes as PostgreSQL holds them.
    assert drifted.drift[0].units == (DriftUnit(label=disc.candidates[0].label, change="changed"),)
    assert await table_digest(pg_db.admin_dsn) == before
    assert await admin_fetch(pg_db.admin_dsn, "SELECT * FROM consumed_approvals") == []
    assert await ius_of(pg_db.admin_dsn, DOC_ID) == []
