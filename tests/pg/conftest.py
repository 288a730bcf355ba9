"""PostgreSQL fixtures: one server per session, one migrated template, one database per test.

``pg_server`` is the server: the one ``CUTTER_TEST_DSN`` names (a superuser DSN), else a
`TempCluster` started once for the session. ``pg_template`` migrates ``cutter_template``
once and creates the cluster-wide roles; ``pg_db`` clones it with
``CREATE DATABASE ... TEMPLATE`` for each test (as procrastinate's ``tests/conftest.py``
does) and drops the clone afterwards.

The fixtures are synchronous and run their few statements with ``asyncio.run``, so they
work under any test, sync or ``@pytest.mark.anyio``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from tests._process_guard import require_marker
from tests.pg.cluster import SUPERUSER, TempCluster, find_bindir

DSN_ENV = "CUTTER_TEST_DSN"
TEMPLATE = "cutter_template"
WRITER = "cutter_writer"
READER = "cutter_reader"
CONTROL = "cutter_control"
ADMIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PgServer:
    """A server the tests may create and drop databases on."""

    base_dsn: str  # a superuser's DSN; its database part is replaced per call
    cluster: TempCluster | None  # None when the server came from CUTTER_TEST_DSN

    def admin_dsn(self, database: str) -> str:
        """The superuser's DSN to ``database``."""
        return _with(self.base_dsn, database=database)

    def dsn(self, database: str, user: str) -> str:
        """``user``'s DSN to ``database``, with no password (trust on a self-started server)."""
        return _with(self.base_dsn, database=database, user=user)


@dataclass(frozen=True)
class PgDatabase:
    """A migrated database of its own for one test; the writer, control and reader roles
    exist and may log in (the daemon's two logins are ``writer_dsn`` and ``control_dsn``)."""

    name: str
    admin_dsn: str
    writer_dsn: str
    reader_dsn: str
    control_dsn: str


def _with(dsn: str, *, database: str, user: str | None = None) -> str:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"{DSN_ENV} must be a postgresql:// URI")
    netloc = parts.netloc
    if user is not None:
        netloc = quote(user, safe="") + "@" + netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc, path="/" + quote(database, safe="")))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _execute(dsn: str, *statements: str) -> None:
    """Run each statement on its own (CREATE/DROP DATABASE refuse a transaction block)."""
    conn = await asyncpg.connect(dsn, timeout=ADMIN_TIMEOUT_S)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def migrate_with_roles(dsn: str) -> None:
    """Migrate the database at ``dsn`` (a superuser's) and create or re-grant the writer
    and reader login roles: what every test database holds. ``scripts/benchmarks/pg.py``
    prepares its databases with it too."""
    from cutter.stores.pg.migrate import migrate
    from cutter.stores.pg.roles import create_roles

    await migrate(dsn)
    await create_roles(dsn, writer=WRITER, reader=READER, login=True)


class NoServerBinaries(RuntimeError):
    """Neither a DSN nor the server binaries to start a private cluster."""


@contextmanager
def running_server(external_dsn: str | None, dsn_env: str) -> Iterator[PgServer]:
    """The server ``external_dsn`` names, else a private cluster stopped on exit.
    The tests and ``scripts/benchmarks/pg.py`` both start theirs here."""
    if external_dsn:
        yield PgServer(base_dsn=external_dsn, cluster=None)
        return
    bindir = find_bindir()
    if bindir is None:
        raise NoServerBinaries(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) under `pg_config --bindir`"
            f" or /usr/lib/postgresql/*/bin: install Debian's postgresql package, or set {dsn_env}"
            " to a superuser DSN"
        )
    cluster = TempCluster(bindir)
    cluster.start()
    try:
        yield PgServer(base_dsn=cluster.dsn(user=SUPERUSER), cluster=cluster)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's server: ``$CUTTER_TEST_DSN``, else a private cluster stopped at the end."""
    with ExitStack() as stack:
        try:
            pg = stack.enter_context(running_server(os.environ.get(DSN_ENV), DSN_ENV))
        except NoServerBinaries as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(str(exc))
            pytest.skip(str(exc))
        yield pg


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> Iterator[str]:
    """``cutter_template``, migrated, with both roles granted; nobody may connect to it."""
    admin, template = pg_server.admin_dsn("postgres"), _quote_ident(TEMPLATE)
    drop = [
        f"ALTER DATABASE {template} WITH IS_TEMPLATE false",
        f"DROP DATABASE {template} WITH (FORCE)",
    ]

    async def drop_if_exists() -> None:
        conn = await asyncpg.connect(admin, timeout=ADMIN_TIMEOUT_S)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE):
                for statement in drop:
                    await conn.execute(statement)
        finally:
            await conn.close()

    async def build() -> None:
        await drop_if_exists()
        await _execute(admin, f"CREATE DATABASE {template}")
        await migrate_with_roles(pg_server.admin_dsn(TEMPLATE))
        # A template nobody can connect to is one CREATE DATABASE ... TEMPLATE can always copy.
        await _execute(
            admin, f"ALTER DATABASE {template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        )

    asyncio.run(build())
    try:
        yield TEMPLATE
    finally:
        if pg_server.cluster is None:  # a private cluster is removed whole
            asyncio.run(drop_if_exists())


@pytest.fixture
def pg_db_factory(
    request: pytest.FixtureRequest, pg_server: PgServer, pg_template: str
) -> Iterator[Callable[[], PgDatabase]]:
    """Make more fresh databases for one test; all are dropped after it.

    Call it from a sync fixture or a sync test: it runs its own event loop. The test
    must be marked ``subprocess`` (also when it asks for a database dynamically).
    """
    require_marker(request.node, "uses PostgreSQL")
    admin = pg_server.admin_dsn("postgres")
    made: list[str] = []

    def make() -> PgDatabase:
        if _loop_running():
            raise RuntimeError("call pg_db_factory from a sync fixture, not inside an event loop")
        name = f"test_{secrets.token_hex(6)}"
        asyncio.run(
            _execute(
                admin, f"CREATE DATABASE {_quote_ident(name)} TEMPLATE {_quote_ident(pg_template)}"
            )
        )
        made.append(name)
        return PgDatabase(
            name=name,
            admin_dsn=pg_server.admin_dsn(name),
            writer_dsn=pg_server.dsn(name, WRITER),
            reader_dsn=pg_server.dsn(name, READER),
            control_dsn=pg_server.dsn(name, CONTROL),
        )

    yield make
    if made:
        asyncio.run(
            _execute(admin, *(f"DROP DATABASE {_quote_ident(n)} WITH (FORCE)" for n in made))
        )


@pytest.fixture
def pg_db(pg_db_factory: Callable[[], PgDatabase]) -> PgDatabase:
    """A fresh database cloned from ``cutter_template``, dropped after the test."""
    return pg_db_factory()
