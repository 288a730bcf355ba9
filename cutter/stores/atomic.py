"""Durable file primitives for the embedded stores. Every function here blocks:
call them from a worker thread (``anyio.to_thread.run_sync``), never on the loop.

``write_atomic`` replaces a file whole: the bytes go to a temp file in the same
directory (named ``.<target>.<random>.tmp``, so no store ever lists it), are
flushed and fsynced, renamed onto the target with ``os.replace`` and the
directory is fsynced. A reader sees the old content or the new, never a mix; a
crash leaves at most a stray temp file, never a torn target.

``create_exclusive`` creates a file that must not exist yet (``O_CREAT|O_EXCL``):
among any number of processes exactly one succeeds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """``mkdir -p`` that also fsyncs the parent of every directory it creates."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, ``os.replace``, fsync the directory."""
    directory = path.parent
    make_dirs(directory)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(directory)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists; True when this call created it.

    The ``O_EXCL`` create is the commit point. Should writing the bytes fail
    afterwards, the file is removed again and the error raised, so a failed call
    consumes nothing (a crash in that window leaves a short file, which readers
    report as corrupt and which still blocks any second create: fail closed).
    """
    directory = path.parent
    make_dirs(directory)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    fsync_dir(directory)
    return True


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def remove(path: Path) -> bool:
    """Delete ``path`` durably; True when it existed."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True
