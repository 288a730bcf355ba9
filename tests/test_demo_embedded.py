"""``cutter demo`` on the embedded database: the commands it prints to look at the run
work as printed, and it prints none that would show nothing."""

from __future__ import annotations

import re
import shlex
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from cutter.cli.main import main


def printed_queries(output: str) -> list[tuple[Path, str]]:
    found = []
    for line in output.splitlines():
        if line.strip().startswith("sqlite3 "):
            _, path, query = shlex.split(line.strip())
            found.append((Path(path), query))
    return found


@pytest.mark.parametrize("live", [False, True])
def test_every_query_the_demo_prints_answers_with_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", *(["--live"] if live else [])])
    assert result.exit_code == 0, result.output
    queries = printed_queries(result.output)
    assert any(" FROM ius " in q for _, q in queries) is live  # a dry run stores no unit
    assert len(queries) == (3 if live else 2)
    for path, query in queries:
        with closing(sqlite3.connect(path)) as conn:
            rows = conn.execute(query).fetchall()
        assert rows, query
    run_id = re.search(r"run (run-[0-9a-f]+) ended", result.output)
    assert run_id is not None
