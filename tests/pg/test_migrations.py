"""Schema, migrations and roles on a real server, and ledger tampering found in the stored rows.

Migrating is safe to repeat and to run from two processes at once; ``create_roles`` is
idempotent and grants the writer exactly ``WRITER_GRANTS``; any one-byte change in a
stored ledger entry is found by ``PgLedger.verify`` naming that entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import asyncpg
import msgspec
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.core import codec
from cutter.core.errors import RunChanged
from cutter.core.ledger import ChainBroken
from cutter.core.records import REQUIRED_GRANTS
from cutter.core.sidecar import Sidecar
from cutter.stores.pg.connect import create_pool
from cutter.stores.pg.migrate import (
    MIGRATION_LOCK,
    MigrationRefused,
    migrate,
    migrations,
    schema_version,
)
from cutter.stores.pg.records import PgRunStore
from cutter.stores.pg.roles import CONTROL, CONTROL_GRANTS, WRITER_GRANTS, create_roles
from cutter.stores.pg.target import PgGrantProbe, PgLedger
from tests._harness import paused_sidecar
from tests.pg._stores import (
    ADMIN_TIMEOUT_S,
    WRITER,
    admin_execute,
    admin_fetch,
    admin_fetchval,
    envelopes,
    unique,
)
from tests.pg.conftest import PgDatabase, PgServer

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[2]
VERSIONS = [
    (1, "initial"),
    (2, "one_open_run_per_document"),
    (3, "database_approvals"),
    (4, "control_role"),
    (5, "run_pages"),
    (6, "run_revision"),
    (7, "outbox"),
]
TABLES = {
    "documents",
    "source_versions",
    "ius",
    "ledger",
    "backups",
    "kb_docs",
    "runs",
    "consumed_approvals",
    "kill_switch",
    "schema_version",
    "db_approvals",
    "outbox",
    "deliveries",
}
CHILD_TIMEOUT_S = 60.0


@pytest.fixture
def empty_db(pg_server: PgServer) -> Iterator[str]:
    """The superuser's DSN to a brand-new database that was never migrated."""
    name = unique("empty")
    admin = pg_server.admin_dsn("postgres")
    asyncio.run(admin_execute(admin, f'CREATE DATABASE "{name}" TEMPLATE template0'))
    try:
        yield pg_server.admin_dsn(name)
    finally:
        asyncio.run(admin_execute(admin, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def public_tables(dsn: str) -> list[str]:
    rows = await admin_fetch(
        dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    return [r["tablename"] for r in rows]


async def versions(dsn: str) -> list[tuple[int, str]]:
    rows = await admin_fetch(dsn, "SELECT version, name FROM schema_version ORDER BY version")
    return [(r["version"], r["name"]) for r in rows]


def expected_versions() -> list[tuple[int, str]]:
    return [(m.version, m.name) for m in migrations()]


# == migrate ==========================================================================


@pytest.mark.anyio
async def test_migrate_applies_everything_once_and_then_nothing(empty_db: str) -> None:
    assert await public_tables(empty_db) == []
    assert await migrate(empty_db) == [1, 2, 3, 4, 5, 6, 7]
    assert await schema_version(empty_db) == 7
    assert set(await public_tables(empty_db)) == TABLES
    assert await versions(empty_db) == expected_versions() == VERSIONS

    assert await migrate(empty_db) == []
    assert await schema_version(empty_db) == 7
    assert await versions(empty_db) == VERSIONS
    assert set(await public_tables(empty_db)) == TABLES
    # The kill switch row is seeded once, not again on the second run.
    assert await admin_fetchval(empty_db, "SELECT count(*) FROM kill_switch") == 1
    # Nothing holds the migration lock afterwards.
    assert await admin_fetchval(empty_db, "SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK)


@pytest.mark.anyio
async def test_migrating_the_migrated_template_clone_applies_nothing(pg_db: PgDatabase) -> None:
    assert await migrate(pg_db.admin_dsn) == []
    assert await schema_version(pg_db.admin_dsn) == 7


async def _back_to_version_1_with_two_open_runs(dsn: str) -> None:
    """As a database migrated before 0002 existed, holding two open runs of doc-1."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP INDEX runs_one_open_per_document")
        await conn.execute("DELETE FROM schema_version WHERE version = 2")
        for run_id in ("run-a", "run-b"):
            await conn.execute(
                "INSERT INTO runs (run_id, doc_id, state, sidecar) VALUES ($1, 'doc-1', $2, '')",
                run_id,
                "AWAITING_CUT_AUTHORIZATION",
            )
    finally:
        await conn.close()


async def _admin(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def test_two_open_runs_of_one_document_stop_migration_0002_changing_nothing(
    pg_db: PgDatabase,
) -> None:
    """The index cannot be built over two open runs of a document: the migration is
    refused as a whole, with a typed error naming the index and the document, and
    applies once one of the runs has ended."""
    dsn = pg_db.admin_dsn
    anyio.run(_back_to_version_1_with_two_open_runs, dsn)
    with pytest.raises(MigrationRefused, match="runs_one_open_per_document") as refused:
        anyio.run(migrate, dsn)
    assert refused.value.code == "E_MIGRATION_REFUSED"
    assert "doc-1" in refused.value.message
    cli = CliRunner().invoke(main, ["db", "migrate", "--dsn", dsn])
    assert cli.exit_code == 1, cli.output
    assert "E_MIGRATION_REFUSED" in cli.output
    assert "Traceback" not in cli.output
    assert anyio.run(versions, dsn) == [VERSIONS[0], *VERSIONS[2:]]
    index = "SELECT to_regclass('runs_one_open_per_document')"
    assert anyio.run(_admin, dsn, index) is None
    anyio.run(_admin, dsn, "UPDATE runs SET state = 'ABORTED' WHERE run_id = 'run-a'")
    assert anyio.run(migrate, dsn) == [2]
    assert anyio.run(versions, dsn) == sorted(VERSIONS)


async def _run_stored_before_0006(dsn: str) -> Sidecar:
    """As a database migrated before 0006: no revision column, and a run whose
    sidecar was encoded before sidecars carried a revision."""
    run = paused_sidecar("run-a")
    data = codec.encode(run)
    assert data.count(b',"revision":0') == 1
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE runs DROP COLUMN revision")
        await conn.execute("DELETE FROM schema_version WHERE version = 6")
        await conn.execute(
            "INSERT INTO runs (run_id, doc_id, state, sidecar) VALUES ($1, $2, $3, $4)",
            run.run_id,
            run.doc_id,
            run.state.value,
            data.replace(b',"revision":0', b""),
        )
    finally:
        await conn.close()
    return run


@pytest.mark.anyio
async def test_a_run_stored_before_0006_is_revision_0_and_saves_compare_and_save(
    pg_db: PgDatabase,
) -> None:
    run = await _run_stored_before_0006(pg_db.admin_dsn)
    assert await migrate(pg_db.admin_dsn) == [6]
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    try:
        store = PgRunStore(pool)
        assert await store.load(run.run_id) == run
        assert run.revision == 0
        advanced = msgspec.structs.replace(run, started_by="first", revision=1)
        await store.save(advanced)
        with pytest.raises(RunChanged):  # a second walker that also held revision 0
            await store.save(msgspec.structs.replace(run, started_by="second", revision=1))
        assert await store.load(run.run_id) == advanced
    finally:
        await pool.close()


CHILD = """
import json, sys
import anyio
from cutter.stores.pg.migrate import migrate
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(anyio.run(migrate, sys.argv[1])), flush=True)
"""

WAITING_FOR_MIGRATION_LOCK = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = 0 AND objid = $1::bigint::oid AND objsubid = 1
"""


async def _line(stream: BufferedByteReceiveStream) -> str:
    return (await stream.receive_until(b"\n", 65536)).decode()


@pytest.mark.anyio
async def test_two_processes_migrating_at_once_apply_each_version_once(empty_db: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", CHILD, empty_db]
    async with (
        await anyio.open_process(command, cwd=REPO, env=env) as first,
        await anyio.open_process(command, cwd=REPO, env=env) as second,
    ):
        children: list[Process] = [first, second]
        outs = [BufferedByteReceiveStream(p.stdout) for p in children if p.stdout]
        with anyio.fail_after(CHILD_TIMEOUT_S):
            assert [await _line(out) for out in outs] == ["ready", "ready"]
        # Hold the migration lock ourselves until both children queue behind it, so both
        # are certainly migrating at the same moment.
        admin = await asyncpg.connect(empty_db, timeout=ADMIN_TIMEOUT_S)
        try:
            await admin.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            for child in children:
                assert child.stdin is not None
                await child.stdin.send(b"go\n")
            with anyio.fail_after(CHILD_TIMEOUT_S):
                while await admin.fetchval(WAITING_FOR_MIGRATION_LOCK, MIGRATION_LOCK) < 2:
                    pass
            await admin.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        finally:
            await admin.close()
        with anyio.fail_after(CHILD_TIMEOUT_S):
            results = [json.loads(await _line(out)) for out in outs]
            codes = [await child.wait() for child in children]
    assert codes == [0, 0]
    assert sorted(results) == [[], [1, 2, 3, 4, 5, 6, 7]]
    assert await versions(empty_db) == VERSIONS
    assert set(await public_tables(empty_db)) == TABLES
    assert await admin_fetchval(empty_db, "SELECT count(*) FROM kill_switch") == 1


def test_the_cli_migrates_and_prints_the_schema_version(empty_db: str) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["db", "migrate", "--dsn", empty_db])
    assert first.exit_code == 0, first.output
    assert "applied [1, 2, 3, 4, 5, 6, 7]" in first.output
    assert "schema version 7" in first.output
    again = runner.invoke(main, ["db", "migrate", "--dsn", empty_db])
    assert again.exit_code == 0, again.output
    assert "applied nothing" in again.output
    assert "schema version 7" in again.output


# == roles ============================================================================


@pytest.fixture
def fresh_roles(pg_db: PgDatabase) -> Iterator[tuple[str, str]]:
    """Names of a writer and a reader role that do not exist yet; dropped afterwards."""
    writer, reader = unique("writer"), unique("reader")
    yield writer, reader

    async def drop() -> None:
        exists = await admin_fetch(
            pg_db.admin_dsn,
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])",
            [writer, reader],
        )
        for row in exists:
            role = row["rolname"]
            await admin_execute(pg_db.admin_dsn, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"')

    asyncio.run(drop())


async def table_grants(dsn: str, role: str) -> dict[str, set[str]]:
    rows = await admin_fetch(
        dsn,
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
        " WHERE grantee = $1",
        role,
    )
    grants: dict[str, set[str]] = {}
    for row in rows:
        grants.setdefault(row["table_name"], set()).add(row["privilege_type"])
    return grants


def writer_grants() -> dict[str, set[str]]:
    return {table: set(privileges) for table, privileges in WRITER_GRANTS.items()}


@pytest.mark.anyio
async def test_create_roles_twice_grants_exactly_the_writer_grants(
    pg_db: PgDatabase, fresh_roles: tuple[str, str]
) -> None:
    writer, reader = fresh_roles
    for _ in range(2):
        await create_roles(pg_db.admin_dsn, writer=writer, reader=reader)
        assert await table_grants(pg_db.admin_dsn, writer) == writer_grants()
        assert await table_grants(pg_db.admin_dsn, reader) == {t: {"SELECT"} for t in TABLES}
    assert set(WRITER_GRANTS) == TABLES
    count = await admin_fetchval(
        pg_db.admin_dsn,
        "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1::text[]) AND NOT rolcanlogin",
        [writer, reader],
    )
    assert count == 2

    pool = await create_pool(pg_db.admin_dsn, role=writer, min_size=0)
    try:
        probed = await PgGrantProbe(pool).writer_grants()
    finally:
        await pool.close()
    assert (probed.writer, probed.grants) == (writer, REQUIRED_GRANTS)


@pytest.mark.anyio
async def test_create_roles_takes_back_a_privilege_granted_by_hand(
    pg_db: PgDatabase, fresh_roles: tuple[str, str]
) -> None:
    writer, reader = fresh_roles
    await create_roles(pg_db.admin_dsn, writer=writer, reader=reader)
    await admin_execute(
        pg_db.admin_dsn,
        f'GRANT UPDATE, DELETE, TRUNCATE ON ledger TO "{writer}"',
        f'GRANT INSERT ON kb_docs TO "{reader}"',
        f'REVOKE INSERT ON ius FROM "{writer}"',
    )
    await create_roles(pg_db.admin_dsn, writer=writer, reader=reader)
    assert await table_grants(pg_db.admin_dsn, writer) == writer_grants()
    assert await table_grants(pg_db.admin_dsn, reader) == {t: {"SELECT"} for t in TABLES}


@pytest.mark.anyio
async def test_the_default_writer_of_the_template_holds_the_writer_grants(
    pg_db: PgDatabase,
) -> None:
    assert await table_grants(pg_db.admin_dsn, WRITER) == writer_grants()
    await create_roles(pg_db.admin_dsn)
    assert await table_grants(pg_db.admin_dsn, WRITER) == writer_grants()


@pytest.mark.anyio
async def test_the_control_role_holds_exactly_its_grants(pg_db: PgDatabase) -> None:
    expected = {table: set(privileges) for table, privileges in CONTROL_GRANTS.items()}
    assert await table_grants(pg_db.admin_dsn, CONTROL) == expected
    await admin_execute(pg_db.admin_dsn, f'GRANT INSERT ON ius TO "{CONTROL}"')
    await create_roles(pg_db.admin_dsn)
    assert await table_grants(pg_db.admin_dsn, CONTROL) == expected
    assert "ius" not in expected  # it writes no target table


@pytest.mark.anyio
async def test_migration_0004_takes_the_gate_from_a_writer_granted_before_it(
    pg_db: PgDatabase,
) -> None:
    """A database migrated and granted before 0004: the writer still holds the kill
    switch and the consumption records until 0004 applies, then it does not."""
    await admin_execute(
        pg_db.admin_dsn,
        "DROP TRIGGER kb_docs_control_only ON kb_docs",
        "DROP FUNCTION kb_docs_control_only()",
        "DELETE FROM schema_version WHERE version = 4",
        f'GRANT UPDATE ON kill_switch TO "{WRITER}"',
        f'GRANT INSERT ON consumed_approvals TO "{WRITER}"',
    )
    assert await migrate(pg_db.admin_dsn) == [4]
    assert await table_grants(pg_db.admin_dsn, WRITER) == writer_grants()


# == ledger tampering =================================================================


@pytest.fixture
async def ledger_rows(pg_db: PgDatabase) -> AsyncIterator[tuple[PgLedger, str]]:
    """A ledger of three entries on PostgreSQL, and its head hash."""
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0, max_size=2)
    try:
        ledger = PgLedger(pool)
        for envelope in envelopes():
            await ledger.append(envelope)
        yield ledger, await ledger.verify()
    finally:
        await pool.close()


async def _stored(admin: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await admin.fetch(
            "SELECT seq, prev_hash, entry_hash, envelope, envelope_sha FROM ledger ORDER BY seq"
        )
    )


async def _broken_at(ledger: PgLedger) -> int:
    with pytest.raises(ChainBroken) as caught:
        await ledger.verify()
    assert f"ledger entry {caught.value.seq}" in str(caught.value)
    return caught.value.seq


@pytest.mark.anyio
async def test_a_flipped_byte_anywhere_in_an_envelope_is_found_at_its_entry(
    pg_db: PgDatabase, ledger_rows: tuple[PgLedger, str]
) -> None:
    ledger, head = ledger_rows
    admin = await asyncpg.connect(pg_db.admin_dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        stored = await _stored(admin)
        assert len(stored) == 3
        for position, row in enumerate(stored):
            original: bytes = row["envelope"]
            for index in range(len(original)):
                for mask in (0x01, 0x80):
                    await admin.execute(
                        "UPDATE ledger SET envelope = set_byte(envelope, $2, get_byte(envelope, $2)"
                        " # $3) WHERE seq = $1",
                        row["seq"],
                        index,
                        mask,
                    )
                    assert await _broken_at(ledger) == position, (position, index, mask)
                    await admin.execute(
                        "UPDATE ledger SET envelope = $2 WHERE seq = $1", row["seq"], original
                    )
            assert await ledger.verify() == head
        # Appending or dropping a byte is a change too.
        for position, row in enumerate(stored):
            for changed in (row["envelope"] + b" ", row["envelope"][:-1]):
                await admin.execute(
                    "UPDATE ledger SET envelope = $2 WHERE seq = $1", row["seq"], changed
                )
                assert await _broken_at(ledger) == position
            await admin.execute(
                "UPDATE ledger SET envelope = $2 WHERE seq = $1", row["seq"], row["envelope"]
            )
        assert await ledger.verify() == head
    finally:
        await admin.close()


def _one_char_changes(text: str) -> list[str]:
    """Every one-character change of a hex string: the next hex digit, and a flipped bit
    (which also turns a letter into its upper case)."""
    changed = []
    for index, char in enumerate(text):
        for new in (format((int(char, 16) + 1) % 16, "x"), chr(ord(char) ^ 0x20)):
            changed.append(text[:index] + new + text[index + 1 :])
    return changed


@pytest.mark.anyio
@pytest.mark.parametrize("column", ["prev_hash", "entry_hash"])
async def test_a_changed_hex_digit_in_a_hash_column_is_found_at_its_entry(
    pg_db: PgDatabase, ledger_rows: tuple[PgLedger, str], column: str
) -> None:
    ledger, head = ledger_rows
    admin = await asyncpg.connect(pg_db.admin_dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        for position, row in enumerate(await _stored(admin)):
            for changed in _one_char_changes(row[column]):
                await admin.execute(
                    f"UPDATE ledger SET {column} = $2 WHERE seq = $1", row["seq"], changed
                )
                assert await _broken_at(ledger) == position, (position, changed)
            await admin.execute(
                f"UPDATE ledger SET {column} = $2 WHERE seq = $1", row["seq"], row[column]
            )
            assert await ledger.verify() == head
    finally:
        await admin.close()


@pytest.mark.anyio
@pytest.mark.parametrize("mask", [0x01, 0x100, 0x40000])
async def test_a_changed_seq_is_found_at_its_entry(
    pg_db: PgDatabase, ledger_rows: tuple[PgLedger, str], mask: int
) -> None:
    ledger, head = ledger_rows
    admin = await asyncpg.connect(pg_db.admin_dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        for position, row in enumerate(await _stored(admin)):
            changed = row["seq"] ^ mask
            if changed in (0, 1, 2):  # would collide with another entry's key
                changed = row["seq"] + 3
            await admin.execute("UPDATE ledger SET seq = $2 WHERE seq = $1", row["seq"], changed)
            assert await _broken_at(ledger) == position, (position, changed)
            await admin.execute("UPDATE ledger SET seq = $1 WHERE seq = $2", row["seq"], changed)
            assert await ledger.verify() == head
    finally:
        await admin.close()


@pytest.mark.anyio
async def test_a_changed_envelope_sha_is_found_at_its_entry(
    pg_db: PgDatabase, ledger_rows: tuple[PgLedger, str]
) -> None:
    """``envelope_sha`` is stored in the entry and is what makes appends idempotent: a
    changed one lets the same envelope be appended twice, so verify must find it."""
    ledger, head = ledger_rows
    admin = await asyncpg.connect(pg_db.admin_dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        for position, row in enumerate(await _stored(admin)):
            changed = _one_char_changes(row["envelope_sha"])[0]
            await admin.execute(
                "UPDATE ledger SET envelope_sha = $2 WHERE seq = $1", row["seq"], changed
            )
            assert await _broken_at(ledger) == position
            await admin.execute(
                "UPDATE ledger SET envelope_sha = $2 WHERE seq = $1",
                row["seq"],
                row["envelope_sha"],
            )
            assert await ledger.verify() == head
    finally:
        await admin.close()
