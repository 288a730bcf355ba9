"""A live cut of a 10,000-IU document on PostgreSQL, from the start of ``cut_leg_a`` to
the end of ``write_verify``, against asyncpg's ``copy_records_to_table`` of the same
10,000 rows into an empty table shaped like ``ius``, on the same server in the same run.

The server is ``$CUTTER_BENCH_DSN`` (a superuser DSN) if set, else a throwaway
``tests/pg/cluster.py`` cluster (fsync, synchronous_commit and full_page_writes off)
stopped at the end. Databases are prepared as the tests prepare theirs: one migrated
template with the writer and reader roles, cloned for each repetition, so every run
cuts a document that was never cut, into an empty ``ius``.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from benchmarks.common import Figure, compared

if TYPE_CHECKING:
    from tests.pg.conftest import PgServer

IUS = 10_000
DOC_ID = "bench-charter"
DSN_ENV = "CUTTER_BENCH_DSN"
FIRST, LAST = "cut_leg_a", "write_verify"


def document(units: int = IUS) -> bytes:
    """Markdown with one ``## Article N`` heading and one paragraph per unit: the
    default discoverer finds exactly ``units`` units in it (no preamble, no trailer)."""
    return "".join(
        f"## Article {i}\n\nThe text of article {i}: every member may use the garden, "
        f"subject to the rules of section {i % 7 + 1}.\n\n"
        for i in range(1, units + 1)
    ).encode()


class PhaseSpan:
    """A structlog tap: the perf_counter of ``phase_started`` for ``FIRST`` and of
    ``phase_passed`` for ``LAST``, as the supervisor logs them."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.passed: float | None = None

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event.get("event") == "phase_started" and event.get("phase") == FIRST:
            self.started = time.perf_counter()
        elif event.get("event") == "phase_passed" and event.get("phase") == LAST:
            self.passed = time.perf_counter()
        return event

    def reset(self) -> None:
        self.started = self.passed = None

    def seconds(self) -> float:
        assert self.started is not None, f"no phase_started event for {FIRST}"
        assert self.passed is not None, f"no phase_passed event for {LAST}"
        return self.passed - self.started


@asynccontextmanager
async def server() -> AsyncIterator[PgServer]:
    """``$CUTTER_BENCH_DSN``, else a private cluster, stopped whatever happens."""
    from tests.pg.conftest import running_server

    with running_server(os.environ.get(DSN_ENV), DSN_ENV) as pg:
        yield pg


@asynccontextmanager
async def database(pg: PgServer, template: str | None = None) -> AsyncIterator[str]:
    """A database of its own (a clone of ``template`` if given), dropped on exit."""
    from tests.pg._walk import admin_execute

    name = f"bench_{secrets.token_hex(6)}"
    admin = pg.admin_dsn("postgres")
    clone = f' TEMPLATE "{template}"' if template else ""
    await admin_execute(admin, f'CREATE DATABASE "{name}"{clone}')
    try:
        yield name
    finally:
        await admin_execute(admin, f'DROP DATABASE "{name}" WITH (FORCE)')


async def repetition(
    pg: PgServer, template: str, data: bytes, span: PhaseSpan
) -> tuple[float, float]:
    """One live cut to SG_2 in a fresh database, then the floor in the same database.
    Returns (value, floor) in seconds."""
    import asyncpg

    from benchmarks.walk import approve
    from cutter.discovery import TextDiscoverer
    from cutter.mode import Mode
    from cutter.pg.stores import pg_config
    from cutter.runner import Runner
    from cutter.states import RunState
    from cutter.walk import Pin
    from tests.pg._walk import publish_source

    async with database(pg, template) as name:
        dsn = pg.admin_dsn(name)
        await publish_source(dsn, DOC_ID, data)
        # The superuser's login, every statement as cutter_writer (as `cutter demo --dsn`).
        async with pg_config(dsn, TextDiscoverer()) as config, Runner(config) as runner:
            sc = await runner.cut(DOC_ID, Mode.LIVE, started_by="operator")
            assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION, sc.stop
            kb_id = await approve(config.kb, sc)
            span.reset()
            sc = await runner.resume(sc.run_id, kb_id)
            assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
            value = span.seconds()
        conn = await asyncpg.connect(dsn)
        try:
            # The very rows leg A wrote, fetched before the clock starts.
            records = [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT * FROM ius WHERE change_set_id = $1 ORDER BY ordinal",
                    sc.pins[Pin.CHANGE_SET_ID],
                )
            ]
            assert len(records) == IUS, len(records)
            await conn.execute("CREATE TABLE iu_floor (LIKE ius INCLUDING ALL)")
            start = time.perf_counter()
            await conn.copy_records_to_table("iu_floor", records=records)
            floor = time.perf_counter() - start
        finally:
            await conn.close()
    return value, floor


async def measure(repetitions: int) -> tuple[list[float], list[float]]:
    import structlog

    from cutter.logs import configure_json
    from cutter.mode import enable_execution, execution_enabled
    from tests.pg.conftest import migrate_with_roles

    data = document()
    span = PhaseSpan()
    saved_logging = structlog.get_config()
    was_enabled = execution_enabled()
    configure_json(io.StringIO(), tap=span)
    enable_execution()  # a live cut, on a server this benchmark owns
    try:
        async with server() as pg, database(pg) as template:
            await migrate_with_roles(pg.admin_dsn(template))
            await repetition(pg, template, data, span)  # warm up
            values, floors = [], []
            for _ in range(repetitions):
                value, floor = await repetition(pg, template, data, span)
                values.append(value)
                floors.append(floor)
            return values, floors
    finally:
        enable_execution(was_enabled)
        structlog.configure(**saved_logging)


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    values, floors = anyio.run(measure, repetitions)
    where = f"${DSN_ENV}" if os.environ.get(DSN_ENV) else "a TempCluster (fsync off)"
    return compared(
        "pg",
        "ms",
        [v * 1e3 for v in values],
        [f * 1e3 for f in floors],
        target="<= 2x the floor",
        limit=2.0,
        note=(
            f"live, {IUS:,} IUs ({len(document()) / 1e6:.1f} MB of ## Article N), phase_started "
            f"{FIRST} to phase_passed {LAST} (phase docs, sidecar saves included); floor: COPY "
            f"of the same rows into an empty LIKE ius INCLUDING ALL table (its indexes and "
            f"checks, not its foreign key); a fresh database per repetition on {where}"
        ),
    )
