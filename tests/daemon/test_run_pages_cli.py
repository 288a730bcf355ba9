"""``cutter runs`` against the real daemon holding 5,000 runs (stored through the run
store's API, not walked): a page at a time with the command for the next, every
page with ``--all``, each run once; a bad cursor is a one-line typed refusal.

Before paging, the one ``runs`` reply was 1.2 MB, over the client's frame limit,
and the command died with ``anyio.DelimiterNotFound``."""

from __future__ import annotations

import shlex
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from cutter.assembly.embedded import embedded_config
from cutter.cli.main import main
from cutter.core.protocol import MAX_FRAME_BYTES, RunList, decode_reply, encode
from cutter.core.states import RunState
from tests._many_runs import many_runs, store_runs
from tests.daemon.conftest import DaemonProcess, start_daemon

pytestmark = pytest.mark.subprocess

MANY = 5000


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def pages_of(result: Result) -> list[RunList]:
    assert result.exit_code == 0, result.output
    replies = [decode_reply(line.encode()) for line in result.stdout.splitlines()]
    assert all(isinstance(r, RunList) for r in replies)
    return [r for r in replies if isinstance(r, RunList)]


@pytest.fixture
def crowded(tmp_path: Path, daemons: list[DaemonProcess]) -> DaemonProcess:
    state = tmp_path / "state"

    async def stored() -> None:
        async with embedded_config(state) as config:  # group commit: few syncs
            await store_runs(config.run_store, many_runs(MANY), at_once=64)

    anyio.run(stored)
    daemon = start_daemon(state)
    daemons.append(daemon)
    return daemon


def test_cutter_runs_pages_5000_runs(crowded: DaemonProcess) -> None:
    socket = str(crowded.socket)
    runs = many_runs(MANY)

    first = cli("runs", "--socket", socket)
    assert first.exit_code == 0, first.output
    listed = [line.split()[0] for line in first.stdout.splitlines() if line.startswith("run-")]
    assert sorted(listed) == sorted(r.run_id for r in runs)[:100]  # shown by update time
    *_, hint = first.stdout.splitlines()
    assert hint.startswith("100 runs; the next page: cutter runs --socket ")
    command = shlex.split(hint.partition(": ")[2])
    second = cli(*command[1:])
    assert second.exit_code == 0, second.output
    rows = [line.split()[0] for line in second.stdout.splitlines() if line.startswith("run-")]
    assert sorted(rows) == sorted(r.run_id for r in runs)[100:200]
    assert second.stdout.splitlines()[-1].startswith("100 runs; the next page: ")

    # --all follows the cursors: a filter's pages hold every run it matches, once.
    for args, state, doc in (
        (("--state", "failed"), RunState.FAILED, None),
        (("--doc", "doc-3", "--limit", "1000"), None, "doc-3"),
        (("--state", "ABORTED", "--doc", "doc-5", "--limit", "7"), RunState.ABORTED, "doc-5"),
    ):
        pages = pages_of(cli("runs", "--socket", socket, "--all", "--json", *args))
        got = [r.run_id for page in pages for r in page.runs]
        expected = sorted(
            r.run_id
            for r in runs
            if (state is None or r.state is state) and (doc is None or r.doc_id == doc)
        )
        assert got == expected, args
        assert pages[-1].next_cursor is None
        assert all(p.next_cursor is not None for p in pages[:-1])

    # The largest page fits in a frame, with room to spare.
    (largest,) = pages_of(cli("runs", "--socket", socket, "--json", "--limit", "1000"))
    assert len(largest.runs) == 1000
    assert len(encode(largest)) < MAX_FRAME_BYTES


def test_a_bad_cursor_or_limit_is_a_one_line_refusal(crowded: DaemonProcess) -> None:
    socket = str(crowded.socket)
    for cursor in ("garbage", "c1.eyJ9.0000000000000000"):
        refused = cli("runs", "--socket", socket, "--cursor", cursor)
        assert refused.exit_code == 1, refused.output
        assert refused.stderr.startswith("E_BAD_CURSOR: bad cursor: "), refused.stderr
        assert "Traceback" not in refused.output
    (page,) = pages_of(cli("runs", "--socket", socket, "--json", "--state", "FAILED"))
    assert page.next_cursor is not None
    other = cli("runs", "--socket", socket, "--cursor", page.next_cursor)  # no --state
    assert other.exit_code == 1
    assert "other --state/--doc filters" in other.stderr
    too_many = cli("runs", "--socket", socket, "--limit", "1001")
    assert too_many.exit_code == 2
    assert "Traceback" not in too_many.output
