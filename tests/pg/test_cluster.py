"""The PostgreSQL test infrastructure itself: reachable, isolated per test, private."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests.pg.cluster import ClusterError, TempCluster, find_bindir
from tests.pg.conftest import TEMPLATE, PgDatabase, PgServer

pytestmark = pytest.mark.subprocess


async def fetchval(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


@pytest.mark.anyio
async def test_admin_dsn_runs_select_1(pg_db: PgDatabase) -> None:
    assert await fetchval(pg_db.admin_dsn, "select 1") == 1
    assert await fetchval(pg_db.admin_dsn, "select current_database()") == pg_db.name
    assert await fetchval(
        pg_db.admin_dsn, "select rolsuper from pg_roles where rolname = current_user"
    )


@pytest.mark.anyio
async def test_writer_and_reader_log_in_to_the_migrated_clone(pg_db: PgDatabase) -> None:
    assert await fetchval(pg_db.writer_dsn, "select current_user") == "cutter_writer"
    assert await fetchval(pg_db.reader_dsn, "select current_user") == "cutter_reader"
    assert await fetchval(pg_db.admin_dsn, "select count(*) from schema_version") >= 1


@pytest.fixture
def other_db(pg_db_factory: Callable[[], PgDatabase]) -> PgDatabase:
    return pg_db_factory()


@pytest.mark.anyio
async def test_databases_are_isolated(pg_db: PgDatabase, other_db: PgDatabase) -> None:
    other = other_db
    assert other.name != pg_db.name
    conn = await asyncpg.connect(pg_db.admin_dsn)
    try:
        await conn.execute("create table only_here (x int)")
    finally:
        await conn.close()
    probe = "select to_regclass('only_here') is not null"
    assert await fetchval(pg_db.admin_dsn, probe) is True
    assert await fetchval(other.admin_dsn, probe) is False


@pytest.mark.anyio
async def test_a_table_made_by_an_earlier_test_is_gone(pg_db: PgDatabase) -> None:
    assert await fetchval(pg_db.admin_dsn, "select to_regclass('only_here') is null") is True


@pytest.mark.anyio
async def test_the_template_refuses_connections(pg_server: PgServer, pg_template: str) -> None:
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
        await fetchval(pg_server.admin_dsn(pg_template), "select 1")
    assert pg_template == TEMPLATE


@pytest.mark.anyio
@pytest.mark.may_skip  # a server given by CUTTER_TEST_DSN is not started here
async def test_a_self_started_server_has_no_tcp_listener(pg_server: PgServer) -> None:
    if pg_server.cluster is None:
        pytest.skip("the server came from CUTTER_TEST_DSN")
    dsn = pg_server.admin_dsn("postgres")
    assert await fetchval(dsn, "show listen_addresses") == ""
    assert await fetchval(dsn, "show fsync") == "off"


@pytest.mark.may_skip  # a server given by CUTTER_TEST_DSN is not started here
def test_a_server_that_cannot_start_raises_with_its_log_and_leaves_nothing(
    pg_server: PgServer,
) -> None:
    if pg_server.cluster is None:
        pytest.skip("the server came from CUTTER_TEST_DSN")
    bindir = find_bindir()
    assert bindir is not None
    cluster = TempCluster(bindir, settings={"shared_buffers": "not-a-size"})
    with pytest.raises(ClusterError, match='invalid value for parameter "shared_buffers"') as exc:
        cluster.start()
    log = re.search(r"server log tail \((\S+)\)", str(exc.value))
    assert log is not None
    assert not Path(log[1]).parent.exists()
    with pytest.raises(ClusterError, match="not been started"):
        _ = cluster.root
