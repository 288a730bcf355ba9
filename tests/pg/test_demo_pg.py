"""``cutter demo --live --dsn`` runs again on the same database: each live demo cuts a
fresh edition of the sample instead of stopping at the version an earlier one cut."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]


def demo(db: PgDatabase, state_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cutter", "demo", "--live", "--dsn", db.admin_dsn]
    return subprocess.run(
        [*command, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_the_live_demo_runs_twice_on_one_database(pg_db: PgDatabase, tmp_path: Path) -> None:
    first = demo(pg_db, tmp_path / "one")
    assert first.returncode == 0, first.stdout + first.stderr
    second = demo(pg_db, tmp_path / "two")
    assert second.returncode == 0, second.stdout + second.stderr
    for done in (first, second):
        assert "ended CLOSEOUT_REPORTED" in done.stdout
        assert "STOP_ALREADY_CUT" not in done.stdout
    assert "IUs of garden-charter are active" in second.stdout
