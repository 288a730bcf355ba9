"""``cutter runs`` against the real daemon on PostgreSQL holding 5,000 runs (saved
through ``PgRunStore``): every page of a filter, each run once, from SQL pages;
a garbled cursor is a one-line typed refusal. (On main the one reply was 1.2 MB
and the client died with ``anyio.DelimiterNotFound``.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from cutter.cli.main import main
from cutter.core.protocol import RunList, decode_reply
from cutter.core.states import RunState
from cutter.stores.pg.connect import create_pool
from cutter.stores.pg.records import PgRunStore
from tests._many_runs import many_runs, store_runs
from tests.daemon._drive import launch
from tests.daemon.conftest import DaemonProcess
from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.subprocess

MANY = 5000
WRITER = "cutter_writer"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def pg_daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def test_cutter_runs_pages_5000_runs_on_postgres(
    pg_db: PgDatabase, tmp_path: Path, pg_daemons: list[DaemonProcess]
) -> None:
    runs = many_runs(MANY)

    async def seed() -> None:
        pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0, max_size=8)
        try:
            await store_runs(PgRunStore(pool), runs)
        finally:
            await pool.close()

    anyio.run(seed)
    daemon = launch(tmp_path / "state", "--dsn", pg_db.admin_dsn)
    pg_daemons.append(daemon)
    socket = str(daemon.socket)

    first = cli("runs", "--socket", socket)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-1].startswith("100 runs; the next page: cutter runs")

    for args, state, doc in (
        (("--state", "REJECTED"), RunState.REJECTED, None),
        (
            ("--doc", "doc-2", "--state", "CLOSEOUT_REPORTED", "--limit", "13"),
            RunState.CLOSEOUT_REPORTED,
            "doc-2",
        ),
        (("--limit", "1000"), None, None),
    ):
        result = cli("runs", "--socket", socket, "--all", "--json", *args)
        assert result.exit_code == 0, result.output
        pages = [decode_reply(line.encode()) for line in result.stdout.splitlines()]
        assert all(isinstance(p, RunList) for p in pages)
        got = [r.run_id for p in pages if isinstance(p, RunList) for r in p.runs]
        expected = sorted(
            r.run_id
            for r in runs
            if (state is None or r.state is state) and (doc is None or r.doc_id == doc)
        )
        assert got == expected, args

    refused = cli("runs", "--socket", socket, "--cursor", "c1.garbled.0123456789abcdef")
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith("E_BAD_CURSOR: "), refused.stderr
    assert "Traceback" not in refused.output
    assert daemon.stop() == 0
