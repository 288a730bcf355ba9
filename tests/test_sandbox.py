"""The dry-run sandbox keeps every write to itself and reads the target through,
for the cut mark and the backups a restore reads as for rows."""

from __future__ import annotations

import pytest

from cutter.core.errors import CorruptRecord
from cutter.core.ports import Target
from cutter.core.records import Backup
from cutter.stores.memory.target import InMemoryIUStore, InMemoryLedger, InMemorySources
from cutter.walk.sandbox import sandbox
from tests.pg._stores import article_source, cut

pytestmark = pytest.mark.anyio


def _target() -> tuple[InMemorySources, Target]:
    sources = InMemorySources()
    return sources, Target(sources=sources, ius=InMemoryIUStore(), ledger=InMemoryLedger())


async def test_the_cut_mark_set_or_cleared_in_a_sandbox_stays_there() -> None:
    sources, base = _target()
    version = await sources.publish("doc-1", article_source())
    await base.sources.mark_cut(version.sv_id, "cs-live")
    box = sandbox(base)
    await box.sources.set_cut(version.sv_id, None)
    assert await box.sources.cut_by(version.sv_id) is None
    await box.sources.mark_cut(version.sv_id, "cs-dry")
    assert await box.sources.cut_by(version.sv_id) == "cs-dry"
    assert await base.sources.cut_by(version.sv_id) == "cs-live"


async def test_a_marked_version_keeps_its_first_mark_in_a_sandbox_as_in_a_store() -> None:
    sources, base = _target()
    version = await sources.publish("doc-1", article_source())
    await base.sources.mark_cut(version.sv_id, "cs-live")
    box = sandbox(base)
    await box.sources.mark_cut(version.sv_id, "cs-dry")
    assert await box.sources.cut_by(version.sv_id) == "cs-live"


async def test_a_sandbox_reads_the_targets_backups_and_keeps_its_own() -> None:
    sources, base = _target()
    stored = Backup(doc_id="doc-1", rows=())
    await base.ius.save_backup(stored)
    box = sandbox(base)
    assert await box.ius.load_backup(stored.backup_id) == stored
    data = article_source()
    version = await sources.publish("doc-1", data)
    await box.ius.write_staged(cut(version, data, "cs-dry", parts=2))
    mine = Backup(doc_id="doc-1", rows=tuple(await box.ius.rows("doc-1")))
    await box.ius.save_backup(mine)
    assert [b.backup_id for b in await box.ius.backups("doc-1")] == [
        stored.backup_id,
        mine.backup_id,
    ]
    assert [b.backup_id for b in await base.ius.backups("doc-1")] == [stored.backup_id]
    with pytest.raises(CorruptRecord, match="bk-nobody"):
        await box.ius.load_backup("bk-nobody")
