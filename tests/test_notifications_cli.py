"""``cutter notifications --state-dir``: the outbox read straight from the embedded
database, filtered by delivery state and run; bad input is a typed error."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest
from click.testing import CliRunner

from cutter.assembly.embedded import open_state_dir
from cutter.cli.main import main
from cutter.core.outbox import attempted
from cutter.stores.sqlite.records import SqliteRunStore
from tests._harness import PAUSED_AT, paused_sidecar

OK, BAD = "http://127.0.0.1:9/ok", "http://127.0.0.1:9/bad"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Two runs' gate_opened notices: run-a's delivered to one endpoint and failed at
    the other, run-b's dispatched to no webhook."""

    async def fill() -> None:
        async with open_state_dir(tmp_path, create=True) as db:
            store = SqliteRunStore(db)
            await store.create(paused_sidecar("run-a"))
            other = msgspec.structs.replace(paused_sidecar("run-b"), doc_id="doc-2")
            await store.create(other)
            first, second = await store.undispatched(10)
            await store.dispatch(first.notice_id, [OK, BAD], PAUSED_AT)
            await store.dispatch(second.notice_id, [], PAUSED_AT)
            for due in await store.due(PAUSED_AT, 10):
                ok = due.delivery.endpoint == OK
                error = None if ok else "HTTP 500"
                done = attempted(due.delivery, ok=ok, error=error, now=PAUSED_AT, max_attempts=1)
                await store.record_attempt(done)

    anyio.run(fill)
    return tmp_path


def _run(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(main, ["notifications", *args])
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_every_delivery_is_one_line(state_dir: Path) -> None:
    code, lines, _ = _run("--state-dir", str(state_dir))
    assert code == 0
    assert lines[0].split() == [
        "NOTICE",
        "EVENT",
        "RUN",
        "AT",
        "ENDPOINT",
        "STATE",
        "ATTEMPTS",
        "NEXT",
        "ERROR",
    ]
    rows = [line.split("  ") for line in lines[1:]]
    assert [(r[2], r[4], r[5]) for r in rows[:2]] == [
        ("run-a", BAD, "failed"),
        ("run-a", OK, "delivered"),
    ]
    assert rows[0][-1] == "HTTP 500"
    assert (rows[2][2], rows[2][-1]) == ("run-b", "no webhook")


def test_the_filters_keep_what_they_name(state_dir: Path) -> None:
    code, lines, _ = _run("--state-dir", str(state_dir), "--state", "failed")
    assert code == 0
    assert [line.split("  ")[4] for line in lines[1:]] == [BAD]
    _, lines, _ = _run("--state-dir", str(state_dir), "--state", "PENDING")
    assert lines == ["no notifications"]
    _, lines, _ = _run("--state-dir", str(state_dir), "--run", "run-b")
    assert [line.split("  ")[2] for line in lines[1:]] == ["run-b"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--run", "../etc"), "E_NOTIFICATION_FILTER: "),
        (("--limit", "0"), "E_NOTIFICATION_FILTER: limit must be 1 to 200, not 0"),
        (("--limit", "201"), "E_NOTIFICATION_FILTER: limit must be 1 to 200"),
    ],
)
def test_bad_input_is_a_typed_error(state_dir: Path, args: tuple[str, ...], says: str) -> None:
    code, lines, stderr = _run("--state-dir", str(state_dir), *args)
    assert code == 1
    assert lines == []
    assert says in stderr
    assert "Traceback" not in stderr
