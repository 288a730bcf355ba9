"""Bad input at the PostgreSQL adapters: servers that do not answer, bytes that are not
text, very large bodies, text PostgreSQL cannot hold, hostile ids.

Every case ends in a clear typed error or in the exact bytes stored; nothing hangs and
nothing is truncated or half-written. The silent server is a loopback listener that
accepts and never replies.
"""

from __future__ import annotations

import hashlib
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import pytest
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.core.codec import row_from_record
from cutter.core.errors import CorruptRecord, CutterError, InvalidIdentifier
from cutter.core.records import IURow, IUState
from cutter.stores.pg.connect import RecordRefused, StoreUnavailable, connect, create_pool
from cutter.stores.pg.locks import PgDocumentLocks
from cutter.stores.pg.records import PgKillSwitch, PgKnowledgeBase, PgRunStore
from cutter.stores.pg.target import PgSourceRepository
from tests._harness import paused_sidecar as sidecar
from tests.pg._stores import (
    BACKENDS,
    WRITER,
    Backend,
    TargetUnderTest,
    approval_use,
    article_source,
    cut,
    open_target,
    phase_doc,
    table_snapshot,
)
from tests.pg.conftest import PgDatabase

# A bound against hanging, far above the 1 s timeouts used: not a performance assertion.
HANG_BOUND_S = 10.0
PASSWORD = "sekret"
MIB = 1 << 20


# -- a server that never answers --------------------------------------------------------


class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="silent-listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            conn, _ = self.listener.accept()
            self._accepted.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(timeout=HANG_BOUND_S)
        assert not self._thread.is_alive()
        for conn in self._accepted:
            conn.close()
        for sock in (self.listener, self._wake_r, self._wake_w):
            sock.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


def silent_dsn(listener: SilentListener) -> str:
    return f"postgresql://cutter:{PASSWORD}@127.0.0.1:{listener.port}/kb"


def _assert_names_the_target_not_the_password(message: str, port: int) -> None:
    assert f"127.0.0.1:{port}" in message, message
    assert PASSWORD not in message, message


@pytest.mark.anyio
async def test_connecting_to_a_silent_server_fails_within_seconds(
    silent: SilentListener,
) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await connect(silent_dsn(silent), connect_timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < HANG_BOUND_S
    assert caught.value.code == "E_STORE_UNAVAILABLE"
    _assert_names_the_target_not_the_password(str(caught.value), silent.port)
    assert silent._accepted, "the client never reached the listener"


@pytest.mark.anyio
async def test_a_pool_on_a_silent_server_fails_within_seconds(silent: SilentListener) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await create_pool(silent_dsn(silent), min_size=1, connect_timeout=1.0)
    assert time.monotonic() - started < HANG_BOUND_S
    _assert_names_the_target_not_the_password(str(caught.value), silent.port)


@pytest.mark.anyio
async def test_a_lazy_pool_on_a_silent_server_fails_its_first_statement_clearly(
    silent: SilentListener,
) -> None:
    """``pg_config``'s pool connects lazily, so the first statement meets the silent
    server: it must be ``StoreUnavailable`` too, not a bare ``TimeoutError``."""
    pool = await create_pool(silent_dsn(silent), role=WRITER, min_size=0, connect_timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await PgSourceRepository(pool).current("doc-1")
        assert time.monotonic() - started < HANG_BOUND_S
        assert PASSWORD not in str(caught.value)
    finally:
        pool.terminate()


@pytest.mark.anyio
async def test_a_lazy_pools_first_failure_names_the_target(silent: SilentListener) -> None:
    """docs/storage.md: an unreachable server is E_STORE_UNAVAILABLE "naming the target
    with its password redacted" -- also when the lazy pool of ``pg_config`` meets it."""
    pool = await create_pool(silent_dsn(silent), role=WRITER, min_size=0, connect_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await PgSourceRepository(pool).current("doc-1")
    finally:
        pool.terminate()
    _assert_names_the_target_not_the_password(str(caught.value), silent.port)


@pytest.mark.anyio
async def test_the_kill_switch_on_a_silent_server_fails_closed(silent: SilentListener) -> None:
    pool = await create_pool(silent_dsn(silent), role=WRITER, min_size=0, connect_timeout=1.0)
    try:
        started = time.monotonic()
        assert await PgKillSwitch(pool).engaged() is True
        assert time.monotonic() - started < HANG_BOUND_S
    finally:
        pool.terminate()


def test_the_cli_on_a_silent_server_fails_within_the_default_timeout(
    silent: SilentListener,
) -> None:
    """The operators' path, with the default connect timeout (5 s, docs/storage.md)."""
    started = time.monotonic()
    result = CliRunner().invoke(main, ["db", "migrate", "--dsn", silent_dsn(silent)])
    assert time.monotonic() - started < HANG_BOUND_S
    assert result.exit_code == 1, result.output
    assert "E_STORE_UNAVAILABLE" in result.output
    _assert_names_the_target_not_the_password(result.output, silent.port)


@pytest.mark.anyio
async def test_a_refused_port_fails_at_once_naming_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    dsn = f"postgresql://cutter:{PASSWORD}@127.0.0.1:{port}/kb"
    with pytest.raises(StoreUnavailable) as caught:
        await connect(dsn, connect_timeout=1.0)
    _assert_names_the_target_not_the_password(str(caught.value), port)


@pytest.mark.anyio
async def test_a_socket_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    dsn = f"postgresql://cutter:{PASSWORD}@/kb?host={missing}&port=5432"
    with pytest.raises(StoreUnavailable) as caught:
        await connect(dsn, connect_timeout=1.0)
    assert str(missing) in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.anyio
async def test_a_key_value_dsn_is_redacted_too(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    dsn = f"host={missing} port=5432 user=cutter password={PASSWORD} dbname=kb"
    with pytest.raises(StoreUnavailable) as caught:
        await connect(dsn, connect_timeout=1.0)
    assert PASSWORD not in str(caught.value)


@pytest.mark.anyio
async def test_document_locks_on_an_unreachable_server_fail_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    locks = PgDocumentLocks(f"postgresql://cutter:{PASSWORD}@/kb?host={missing}&port=5432")
    with pytest.raises(StoreUnavailable) as caught:
        async with locks.hold("doc-1", "run-a"):
            pytest.fail("held a lock on a server that is not there")
    assert str(missing) in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- bytes that are not text, and very large bodies -------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "pg":
        return Backend("pg", request.getfixturevalue("pg_db"))
    return Backend(request.param)


@pytest.fixture
async def target(backend: Backend) -> AsyncIterator[TargetUnderTest]:
    async with open_target(backend) as opened:
        yield opened


NOT_TEXT = [
    pytest.param(b"\x00", id="nul"),
    pytest.param(b"before\x00\x00after\x00", id="nuls"),
    pytest.param(b"\xff\xfe\xc3\x28 \xed\xa0\x80 \xf8\x88\x80\x80\x80", id="invalid-utf8"),
    pytest.param(bytes(range(256)) * 16, id="every-byte"),
    pytest.param(b"\xef\xbb\xbfBOM and \r\n\r CRs \x1a", id="bom-and-controls"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("data", NOT_TEXT)
async def test_source_bytes_that_are_not_text_are_stored_exactly(
    target: TargetUnderTest, data: bytes
) -> None:
    version = await target.publish("doc-1", data)
    assert version.size == len(data)
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    assert await target.sources.current("doc-1") == version
    assert await target.sources.content(version.sv_id) == data


@pytest.mark.anyio
@pytest.mark.parametrize("data", NOT_TEXT)
async def test_iu_bodies_that_are_not_text_are_stored_exactly(
    target: TargetUnderTest, data: bytes
) -> None:
    version = await target.publish("doc-1", data)
    rows = cut(version, data, "cs-a", parts=1)
    assert await target.ius.write_staged(rows) == 1
    assert await target.ius.change_set("cs-a") == rows
    assert (await target.ius.rows("doc-1"))[0].body == data


@pytest.mark.anyio
async def test_a_16_mib_source_and_body_round_trip_exactly(target: TargetUnderTest) -> None:
    # Not text, not compressible, with NULs: every byte must come back where it was.
    block = hashlib.sha256(b"seed").digest() * 2 + b"\x00\xff"
    data = (block * (16 * MIB // len(block) + 1))[: 16 * MIB]
    data = bytes(b ^ (i & 0xFF) for i, b in enumerate(data[:4096])) + data[4096:]
    assert len(data) == 16 * MIB
    version = await target.publish("doc-big", data)
    assert version.size == 16 * MIB
    assert await target.sources.content(version.sv_id) == data

    rows = cut(version, data, "cs-big", parts=1)
    assert rows[0].end - rows[0].start == 16 * MIB
    assert await target.ius.write_staged(rows) == 1
    (stored,) = await target.ius.change_set("cs-big")
    assert len(stored.body) == 16 * MIB
    assert stored.body == data
    assert stored.region_sha == hashlib.sha256(stored.body).hexdigest() == rows[0].region_sha
    assert stored == rows[0]


# -- text PostgreSQL cannot hold --------------------------------------------------------


@pytest.fixture
async def pg_target(pg_db: PgDatabase) -> AsyncIterator[TargetUnderTest]:
    async with open_target(Backend("pg", pg_db)) as opened:
        yield opened


def _with(row: IURow, field: str, value: str) -> IURow:
    return msgspec.structs.replace(row, **{field: value})


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["label", "kind", "iu_id"])
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("Article\x001", id="nul"),
        pytest.param("\x00", id="only-nul"),
        pytest.param("Article \udcff", id="lone-surrogate"),
    ],
)
@pytest.mark.subprocess
async def test_text_postgresql_cannot_hold_refuses_the_whole_batch(
    pg_db: PgDatabase, pg_target: TargetUnderTest, field: str, bad: str
) -> None:
    data = article_source(6)
    version = await pg_target.publish("doc-1", data)
    kept = cut(version, data, "cs-a", parts=5)
    assert await pg_target.ius.write_staged(kept[:1]) == 1
    before = await table_snapshot(pg_db.admin_dsn, "ius")

    batch = [*kept[1:3], _with(kept[3], field, bad), kept[4]]
    with pytest.raises(CutterError) as caught:
        await pg_target.ius.write_staged(batch)
    assert isinstance(caught.value, RecordRefused), repr(caught.value)
    assert caught.value.code == "E_RECORD_REFUSED"
    assert "leg A write" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert await table_snapshot(pg_db.admin_dsn, "ius") == before
    assert await pg_target.ius.change_set("cs-a") == kept[:1]


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_a_nul_in_a_mark_cut_change_set_id_is_refused_and_nothing_is_marked(
    pg_target: TargetUnderTest,
) -> None:
    version = await pg_target.publish("doc-1", article_source())
    with pytest.raises(RecordRefused):
        await pg_target.sources.mark_cut(version.sv_id, "cs-\x00")
    assert await pg_target.sources.cut_by(version.sv_id) is None


# -- hostile ids ------------------------------------------------------------------------

HOSTILE_KB_IDS = [
    "",
    "../etc/passwd",
    "runs/../../secret",
    "/absolute",
    "runs//double",
    "runs/run-1/",
    "'; DROP TABLE kb_docs; --",
    "runs/run-1' OR '1'='1",
    "runs/%",
    "runs/_",
    "runs/run-1\x00",
    "runs/r\u00fcn",
    "runs/run-1.json/x",
    "a/" * 9 + "a",
    "x" * 600,
    " runs",
]
HOSTILE_RUN_IDS = [
    "",
    "../run-a",
    "run-a/..",
    "run/a",
    "run-a'; DELETE FROM runs; --",
    "run%",
    "run-\x00",
    "r\u00fcn",
    "x" * 200,
    ".hidden",
]


class Tripwire:
    """Stands in for a pool: any use means a statement was about to be sent."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"a hostile id reached SQL (pool.{name})")


@pytest.mark.subprocess
@pytest.mark.anyio
@pytest.mark.parametrize("kb_id", HOSTILE_KB_IDS)
async def test_a_hostile_kb_id_never_reaches_sql(pg_db: PgDatabase, kb_id: str) -> None:
    tripwire: Any = Tripwire()
    kb, runs = PgKnowledgeBase(tripwire), PgRunStore(tripwire)
    with pytest.raises(InvalidIdentifier):
        await kb.put(kb_id, phase_doc())
    with pytest.raises(InvalidIdentifier):
        await kb.get(kb_id)
    if kb_id:  # "" lists everything, by design
        with pytest.raises(InvalidIdentifier):
            await kb.list(kb_id)
    with pytest.raises(InvalidIdentifier):
        await runs.save_consuming(sidecar("run-a"), approval_use(kb_id))
    with pytest.raises(InvalidIdentifier):
        await runs.consumed_by(kb_id)

    # And on a real database nothing changes.
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    try:
        kb, runs = PgKnowledgeBase(pool), PgRunStore(pool)
        await kb.put("runs/run-a", phase_doc())
        before = {t: await table_snapshot(pg_db.admin_dsn, t) for t in TOUCHED}
        with pytest.raises(InvalidIdentifier):
            await kb.put(kb_id, phase_doc("run-b"))
        with pytest.raises(InvalidIdentifier):
            await runs.save_consuming(sidecar("run-b"), approval_use(kb_id))
        assert {t: await table_snapshot(pg_db.admin_dsn, t) for t in TOUCHED} == before
    finally:
        await pool.close()


TOUCHED = ("kb_docs", "runs", "consumed_approvals")


@pytest.mark.subprocess
@pytest.mark.anyio
@pytest.mark.parametrize("run_id", HOSTILE_RUN_IDS)
async def test_a_hostile_run_id_never_reaches_sql(pg_db: PgDatabase, run_id: str) -> None:
    tripwire: Any = Tripwire()
    runs = PgRunStore(tripwire)
    with pytest.raises(InvalidIdentifier):
        await runs.load(run_id)
    with pytest.raises(InvalidIdentifier):
        await runs.save(sidecar(run_id))
    with pytest.raises(InvalidIdentifier):
        await runs.save_consuming(sidecar(run_id), approval_use("runs/run-a/approvals/alice"))

    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    try:
        runs = PgRunStore(pool)
        await runs.create(sidecar("run-a"))
        before = {t: await table_snapshot(pg_db.admin_dsn, t) for t in TOUCHED}
        with pytest.raises(InvalidIdentifier):
            await runs.save(sidecar(run_id))
        with pytest.raises(InvalidIdentifier):
            await runs.save_consuming(sidecar(run_id), approval_use("runs/run-a/approvals/bob"))
        with pytest.raises(InvalidIdentifier):
            await runs.load(run_id)
        assert {t: await table_snapshot(pg_db.admin_dsn, t) for t in TOUCHED} == before
        assert await runs.run_ids() == ["run-a"]
    finally:
        await pool.close()


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_the_tables_survive_the_classic_injection_as_data(pg_db: PgDatabase) -> None:
    """Values that are not ids (a reason, a note) go in as parameters, never as SQL."""
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    control = await create_pool(pg_db.control_dsn, role="cutter_control", min_size=0)
    try:
        reason = "'); DROP TABLE kill_switch; --"
        await PgKillSwitch(pool, control).engage(reason)
        note = "'; DROP TABLE kb_docs; --"
        await PgKnowledgeBase(pool).put("runs/run-a", phase_doc(note=note))
        assert await PgKnowledgeBase(pool).get("runs/run-a") == phase_doc(note=note)
        assert await PgKillSwitch(pool).engaged() is True
    finally:
        await control.close()
        await pool.close()
    assert [row[1:3] for row in await table_snapshot(pg_db.admin_dsn, "kill_switch")] == [
        (True, reason)
    ]
    assert [row[0] for row in await table_snapshot(pg_db.admin_dsn, "kb_docs")] == ["runs/run-a"]


def test_a_row_with_a_state_no_iu_can_have_reads_as_corrupt_naming_the_row() -> None:
    """``row_from_record`` unpacks ``IU_COLUMNS`` by position; a state outside
    ``IUState`` (the table's CHECK keeps it out, so this is a record from elsewhere)
    is ``CorruptRecord`` naming the row."""
    record = ("doc-1", "sv-1", 7, "iu-1", "Article 8", "unit", 0, 3, "ab" * 32, b"abc")
    with pytest.raises(CorruptRecord) as caught:
        row_from_record((*record, "retired", "cs-1"))  # type: ignore[arg-type]
    assert caught.value.location == "ius/doc-1/sv-1/7"
    assert row_from_record((*record, "staged", "cs-1")).state is IUState.STAGED  # type: ignore[arg-type]
