"""A live cut of a 10,000-IU document on PostgreSQL, from the start of ``cut_leg_a`` to
the end of ``write_verify``, against the least any cut that verifies what it stored
must ask of the server, in the same database in the same run: asyncpg's
``copy_records_to_table`` of the same 10,000 rows into a fresh table with every
column, check, index and foreign key of ``ius`` (the foreign key to
``source_versions`` checks each row), then one read-back of those rows (the
verify phases must check what is stored, not what was sent: docs/performance.md
says why one read-back and not two). CPU time, this process's and the server's,
is reported beside each.

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
import statistics
import time
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from benchmarks.common import Figure, compared
from benchmarks.pg_cpu import Cpu, CpuClock, Reading

if TYPE_CHECKING:
    from tests.pg.conftest import PgServer

IUS = 10_000
DOC_ID = "bench-charter"
DSN_ENV = "CUTTER_BENCH_DSN"
FIRST, LAST = "cut_leg_a", "write_verify"
FLOOR_SCHEMA = "bench_floor"


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
    ``phase_passed`` for ``LAST``, as the supervisor logs them, and the CPU clocks
    read just outside them (so reading them is not in the wall time)."""

    def __init__(self) -> None:
        self.clock = CpuClock(None)
        self.started: float | None = None
        self.passed: float | None = None
        self.cpu_started: Reading | None = None
        self.cpu_passed: Reading | None = None

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event.get("event") == "phase_started" and event.get("phase") == FIRST:
            self.cpu_started = self.clock.read()
            self.started = time.perf_counter()
        elif event.get("event") == "phase_passed" and event.get("phase") == LAST:
            self.passed = time.perf_counter()
            self.cpu_passed = self.clock.read()
        return event

    def reset(self) -> None:
        self.started = self.passed = None
        self.cpu_started = self.cpu_passed = None

    def seconds(self) -> float:
        assert self.started is not None, f"no phase_started event for {FIRST}"
        assert self.passed is not None, f"no phase_passed event for {LAST}"
        return self.passed - self.started

    def cpu(self) -> Cpu:
        assert self.cpu_started is not None, f"no phase_started event for {FIRST}"
        assert self.cpu_passed is not None, f"no phase_passed event for {LAST}"
        return CpuClock.spent(self.cpu_started, self.cpu_passed)


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


async def floor_table(conn: Any) -> None:
    """``FLOOR_SCHEMA.ius``: a fresh, empty table with every column, default, check,
    index and primary key of ``ius`` (``LIKE ... INCLUDING ALL``) and every foreign
    key of it (which ``LIKE`` does not copy), read from the catalog so a migration
    that adds one is in the floor too."""
    await conn.execute(
        f"CREATE SCHEMA {FLOOR_SCHEMA}; "
        f"CREATE TABLE {FLOOR_SCHEMA}.ius (LIKE public.ius INCLUDING ALL)"
    )
    keys = await conn.fetch(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'public.ius'::regclass AND contype = 'f'"
    )
    assert keys, "ius has no foreign key: the floor would not be the real table's"
    for (definition,) in keys:
        await conn.execute(f"ALTER TABLE {FLOOR_SCHEMA}.ius ADD {definition}")


async def floor(conn: Any, records: list[tuple[object, ...]], change_set_id: str) -> float:
    """COPY ``records`` into the fresh floor table, then read them back once, as one
    ``fetch`` of the very statement the stores' read-back runs. Seconds."""
    from cutter.stores.pg import queries as q

    read_back = q.CHANGE_SET_ROWS.replace(" FROM ius ", f" FROM {FLOOR_SCHEMA}.ius ")
    assert read_back != q.CHANGE_SET_ROWS
    start = time.perf_counter()
    await conn.copy_records_to_table(
        "ius", schema_name=FLOOR_SCHEMA, records=records, columns=q.IU_COLUMNS
    )
    rows = await conn.fetch(read_back, change_set_id)
    elapsed = time.perf_counter() - start
    assert len(rows) == len(records), len(rows)
    return elapsed


async def repetition(
    pg: PgServer, template: str, data: bytes, span: PhaseSpan
) -> tuple[float, float, Cpu, Cpu]:
    """One live cut to SG_2 in a fresh database, then the floor in the same database.
    Returns the value and the floor in seconds, and the CPU each took."""
    import asyncpg

    from benchmarks.walk import approve
    from cutter.assembly.postgres import pg_config
    from cutter.core.mode import Mode
    from cutter.core.route import Pin
    from cutter.core.states import RunState
    from cutter.discovery import TextDiscoverer
    from cutter.stores.pg import queries as q
    from cutter.walk.runner import Runner
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
            value, value_cpu = span.seconds(), span.cpu()
        change_set_id = str(sc.pins[Pin.CHANGE_SET_ID])
        conn = await asyncpg.connect(dsn)
        try:
            # The very rows leg A wrote, fetched before the clock starts.
            records = [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT " + ", ".join(q.IU_COLUMNS) + " FROM ius "
                    "WHERE change_set_id = $1 ORDER BY ordinal",
                    change_set_id,
                )
            ]
            assert len(records) == IUS, len(records)
            await floor_table(conn)
            before = span.clock.read()
            floor_s = await floor(conn, records, change_set_id)
            floor_cpu = CpuClock.spent(before, span.clock.read())
        finally:
            await conn.close()
    return value, floor_s, value_cpu, floor_cpu


async def measure(repetitions: int) -> list[tuple[float, float, Cpu, Cpu]]:
    import structlog

    from cutter.core.mode import enable_execution, execution_enabled
    from cutter.runtime.logs import configure_json
    from tests.pg.conftest import migrate_with_roles

    data = document()
    span = PhaseSpan()
    saved_logging = structlog.get_config()
    was_enabled = execution_enabled()
    configure_json(io.StringIO(), tap=span)
    enable_execution()  # a live cut, on a server this benchmark owns
    try:
        async with server() as pg, database(pg) as template:
            span.clock = CpuClock(pg.cluster.data_dir if pg.cluster is not None else None)
            await migrate_with_roles(pg.admin_dsn(template))
            await repetition(pg, template, data, span)  # warm up
            out: list[tuple[float, float, Cpu, Cpu]] = []
            for _ in range(repetitions):
                out.append(await repetition(pg, template, data, span))
            return out
    finally:
        enable_execution(was_enabled)
        structlog.configure(**saved_logging)


def cpu_note(cpus: list[Cpu]) -> str:
    """Median CPU milliseconds, this process's + the server's."""
    client = statistics.median(c.client for c in cpus) * 1e3
    servers = [c.server for c in cpus if c.server is not None]
    if len(servers) < len(cpus):
        return f"{client:.0f} ms here (server not measurable)"
    return f"{client:.0f} ms here + {statistics.median(servers) * 1e3:.0f} ms server"


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    out = anyio.run(measure, repetitions)
    values, floors = [o[0] for o in out], [o[1] for o in out]
    where = f"${DSN_ENV}" if os.environ.get(DSN_ENV) else "a TempCluster (fsync off)"
    return compared(
        "pg",
        "ms",
        [v * 1e3 for v in values],
        [f * 1e3 for f in floors],
        target="<= 1.3x the floor",
        limit=1.3,
        note=(
            f"live, {IUS:,} IUs ({len(document()) / 1e6:.1f} MB of ## Article N), phase_started "
            f"{FIRST} to phase_passed {LAST} (phase docs, sidecar saves included); floor: COPY "
            f"of the same rows into a fresh table with every check, index and foreign key of "
            f"ius, then one read-back of them; a fresh database per repetition on {where}; "
            f"CPU (medians): value {cpu_note([o[2] for o in out])}, "
            f"floor {cpu_note([o[3] for o in out])}"
        ),
    )
