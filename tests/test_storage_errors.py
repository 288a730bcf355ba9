"""The durable writers under an injected ENOSPC / EROFS (the host-independent twin of
tests/daemon/test_storage_errors.py, which fills a real tmpfs): typed, nothing
half-written, no temp file left; and the start-up sweep of crash-left temp files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cutter.errors import StorageFull, StorageReadOnly
from cutter.stores import atomic
from cutter.stores.file_primitives import create_once
from cutter.stores.sweep import MIN_AGE_SECONDS, sweep_temps


def _failing(code: int) -> object:
    def fail(*_: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("code", "typed"),
    [
        (errno.ENOSPC, StorageFull),
        (errno.EDQUOT, StorageFull),
        (errno.EROFS, StorageReadOnly),
        (errno.EACCES, StorageReadOnly),
    ],
)
@pytest.mark.parametrize("writer", ["write_atomic", "create_exclusive", "create_once"])
def test_a_write_that_cannot_be_stored_is_typed_and_leaves_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    typed: type[Exception],
    writer: str,
) -> None:
    target = tmp_path / "record.json"
    if writer == "write_atomic":
        target.write_bytes(b"old")
    monkeypatch.setattr(atomic.os, "fsync", _failing(code))
    write = {
        "write_atomic": atomic.write_atomic,
        "create_exclusive": atomic.create_exclusive,
        "create_once": create_once,
    }[writer]
    with pytest.raises(typed) as raised:
        write(target, b"new")
    assert raised.value.code in ("E_STORAGE_FULL", "E_STORAGE_READ_ONLY")  # type: ignore[attr-defined]
    assert str(target) in str(raised.value)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["record.json"] if writer == "write_atomic" else [])
    if writer == "write_atomic":
        assert target.read_bytes() == b"old"


def test_another_os_error_is_not_disguised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic.os, "fsync", _failing(errno.EIO))
    with pytest.raises(OSError, match="Input/output error") as raised:
        atomic.write_atomic(tmp_path / "x", b"data")
    assert raised.value.errno == errno.EIO


def test_the_sweep_removes_only_old_temp_files_of_our_shape(tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "runs"
    runs.mkdir(parents=True)
    crash_left = runs / ".run-1.json.0123456789ab.tmp"
    in_progress = runs / ".run-2.json.ba9876543210.tmp"
    not_ours = [
        runs / "run-1.json",
        runs / ".run-1.json.tmp",  # no random part
        runs / ".run-1.json.0123456789AB.tmp",  # not our alphabet
        runs / "notes.tmp",
    ]
    for path in [crash_left, in_progress, *not_ours]:
        path.write_bytes(b"x")
    link = runs / ".link.json.0123456789ab.tmp"
    link.symlink_to(tmp_path / "elsewhere")
    now = os.stat(in_progress).st_mtime
    old = now - MIN_AGE_SECONDS - 1
    for path in [crash_left, *not_ours]:
        os.utime(path, (old, old))

    assert sweep_temps(tmp_path, now=now) == [crash_left]
    assert not crash_left.exists()
    assert in_progress.exists()  # may be add-document's write in flight
    assert all(path.exists() for path in not_ours)
    assert link.is_symlink()
