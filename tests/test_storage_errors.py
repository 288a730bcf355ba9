"""Storage that cannot take a write, without a real full disk (the host-independent twin
of tests/daemon/test_storage_errors.py, which fills a real tmpfs).

The database: a write that finds no room (SQLite's ``max_page_count`` reached, what a
full disk looks like to it) is ``StorageFull`` naming the file, rolls back whole, and
the same write succeeds once there is room. The files the daemon writes outside its
database (the owner lock, its log): a full disk or quota is ``StorageFull``, a
read-only mount or a refused permission ``StorageReadOnly``, any other ``OSError``
stays what it is."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cutter.assembly.embedded import config_on
from cutter.core.errors import StorageFull, StorageReadOnly, UnknownDocument
from cutter.core.state_dir import StateDir
from cutter.stores.sqlite.database import open_database
from cutter.stores.sqlite.target import SqliteSources
from cutter.stores.storage_errors import typed_storage_errors

SAMPLE = Path(__file__).resolve().parent.parent / "cutter" / "samples" / "garden-charter.md"


@pytest.mark.anyio
async def test_a_database_write_with_no_room_is_typed_rolled_back_and_retried(
    tmp_path: Path,
) -> None:
    path = StateDir(tmp_path).database
    async with open_database(path) as db:
        sources = config_on(db).target.sources
        assert isinstance(sources, SqliteSources)
        first = await sources.publish("doc-1", SAMPLE.read_bytes())
        before = db.all("SELECT doc_id, sv_id FROM source_versions ORDER BY sv_id")
        pages = db.value("PRAGMA page_count")
        db._writer.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page
        big = SAMPLE.read_bytes() * 64  # ~75 KB: pages the database does not have
        with pytest.raises(StorageFull) as raised:
            await sources.publish("doc-2", big)
        assert raised.value.code == "E_STORAGE_FULL"
        assert str(path) in raised.value.message
        assert db.all("SELECT doc_id, sv_id FROM source_versions ORDER BY sv_id") == before
        assert (await sources.current("doc-1")).sv_id == first.sv_id
        with pytest.raises(UnknownDocument):
            await sources.current("doc-2")
        db._writer.execute("PRAGMA max_page_count = 1073741823")  # room again
        second = await sources.publish("doc-2", big)
        assert (await sources.current("doc-2")).sv_id == second.sv_id


@pytest.mark.parametrize(
    ("code", "typed"),
    [
        (errno.ENOSPC, StorageFull),
        (errno.EDQUOT, StorageFull),
        (errno.EROFS, StorageReadOnly),
        (errno.EACCES, StorageReadOnly),
        (errno.EPERM, StorageReadOnly),
    ],
)
def test_a_file_that_cannot_be_written_is_typed(
    tmp_path: Path, code: int, typed: type[Exception]
) -> None:
    where = tmp_path / "daemon.log"
    with pytest.raises(typed) as raised, typed_storage_errors(where):
        raise OSError(code, os.strerror(code))
    assert raised.value.code in ("E_STORAGE_FULL", "E_STORAGE_READ_ONLY")  # type: ignore[attr-defined]
    assert str(where) in str(raised.value)


def test_another_os_error_is_not_disguised(tmp_path: Path) -> None:
    with (
        pytest.raises(OSError, match="Input/output error") as raised,
        typed_storage_errors(tmp_path / "daemon.log"),
    ):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    assert raised.value.errno == errno.EIO
