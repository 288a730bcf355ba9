"""The ``revert`` benchmark row (``scripts/benchmarks/revert.py``) on a small document:
its floor does a revert's data work — the same end state of the target as the revert
it is compared with — and the row runs end to end. Nothing here is timed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cutter.assembly.embedded import embedded_config
from cutter.core.ledger import RevertEnvelope
from cutter.core.mode import enable_execution
from cutter.core.records import Backup
from cutter.core.route import Pin
from cutter.walk.runner import Runner

ROOT = Path(__file__).resolve().parent.parent
UNITS = 3


@pytest.fixture
def bench() -> Iterator[ModuleType]:
    """``benchmarks.revert``, imported as ``scripts/bench.py`` imports it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "scripts"))
        import benchmarks.revert

        yield benchmarks.revert
    for name in [n for n in sys.modules if n == "benchmarks" or n.startswith("benchmarks.")]:
        del sys.modules[name]


@pytest.mark.anyio
async def test_the_floor_leaves_the_target_as_the_revert_does(
    bench: ModuleType, tmp_path: Path
) -> None:
    enable_execution()
    async with embedded_config(tmp_path / "state") as config, Runner(config) as runner:
        by_revert = await bench.cut_twice(config, "by-revert", UNITS)
        by_floor = await bench.cut_twice(config, "by-floor", UNITS)
        await bench.revert_once(runner, config, by_revert)
        with bench.counting_reads(config.target.ius) as reads:
            await bench.floor_revert(config, by_floor)
        assert dict(reads) == {"rows": 1, "load_backup": 1}  # one pass over each

        ius, sources = config.target.ius, config.target.sources
        entries = await config.target.ledger.entries()
        reverts = {e.envelope.reverts: e.envelope for e in entries[-2:]}
        assert all(isinstance(e, RevertEnvelope) for e in reverts.values())
        for cut in (by_revert, by_floor):
            rows = await ius.rows(cut.doc_id)
            assert len(rows) == UNITS
            assert Backup(doc_id=cut.doc_id, rows=tuple(rows)).backup_id == cut.pins[Pin.BACKUP_ID]
            envelope = reverts[cut.run_id]
            assert envelope.backup_id == cut.pins[Pin.BACKUP_ID]
            assert envelope.pre_restore_backup_id == cut.pins[Pin.ROWS_AFTER]
            pre_restore = await ius.load_backup(envelope.pre_restore_backup_id)
            assert len(pre_restore.rows) == 2 * UNITS  # both versions' rows, kept
            assert await sources.cut_by(str(cut.pins[Pin.SOURCE_VERSION_ID])) is None
        await config.target.ledger.verify()


def test_the_row_runs_and_reports_its_floor(bench: ModuleType, tmp_path: Path) -> None:
    import anyio

    try:
        got = anyio.run(bench.measure, tmp_path, 1, UNITS)
    finally:
        enable_execution(False)
    assert got["rows"] == (2 * UNITS, UNITS)
    assert len(got["reverts"]) == len(got["floors"]) == 1
    figure = bench.figure("revert", UNITS, got, "ext4 (test)")
    assert figure.ratio is not None
    assert figure.floor_cpu is not None  # CPU time beside wall time
    assert "6 rows back to 3" in figure.note
    assert "floor 1 rows + 1 load_backup" in figure.note
