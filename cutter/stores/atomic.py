"""Durable file primitives for the embedded stores. Every function here blocks:
call them from a worker thread (``anyio.to_thread.run_sync``), never on the loop.

``write_atomic`` replaces a file whole: the bytes go to a temp file in the same
directory (named ``.<target>.<random>.tmp``, so no store ever lists it), are
flushed and fsynced, renamed onto the target with ``os.replace`` and the
directory is fsynced. A reader sees the old content or the new, never a mix; a
crash leaves at most a stray temp file, never a torn target (``sweep_temps``
removes those at start).

A full disk or a read-only directory is raised as ``StorageFull`` /
``StorageReadOnly`` (``cutter.stores.storage_errors``), after the temp file is
removed: a failed write changes nothing and leaves nothing behind.

``create_exclusive`` creates a file that must not exist yet (``O_CREAT|O_EXCL``):
among any number of processes exactly one succeeds.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cutter.stores.storage_errors import typed_storage_errors

TEMP_SUFFIX = ".tmp"
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_ATTEMPTS = 100
_EXCLUSIVE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
T = TypeVar("T")


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """``mkdir -p`` that also fsyncs the parent of every directory it creates."""
    with typed_storage_errors(directory):
        _make_dirs(directory)


def _make_dirs(directory: Path) -> None:
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


def _in_its_directory(path: Path, create: Callable[[], T]) -> T:
    """``create()`` (a file in ``path``'s directory); when it finds the directory
    missing, ``make_dirs`` it and create again. A write into an existing directory,
    the usual case, so costs no system call for the directory."""
    try:
        return create()
    except FileNotFoundError:
        make_dirs(path.parent)
        return create()


def open_temp(path: Path) -> tuple[int, str]:
    """A new, empty temp file beside ``path`` (``.<name>.<random>.tmp``, mode 0600),
    open for writing: its descriptor and name."""
    return _in_its_directory(path, lambda: _create_temp(path))


def _create_temp(path: Path) -> tuple[int, str]:
    prefix = os.path.join(path.parent, f".{path.name}.")
    for _ in range(_TEMP_ATTEMPTS):
        name = f"{prefix}{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return os.open(name, _TEMP_FLAGS, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", f"{prefix}*{TEMP_SUFFIX}")


def write_fsynced(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, fsync it, and close it (also when that fails)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, ``os.replace``, fsync the directory."""
    with typed_storage_errors(path):
        _write_atomic(path, data)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp_name = open_temp(path)
    try:
        write_fsynced(fd, data)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists; True when this call created it.

    The ``O_EXCL`` create is the commit point. Should writing the bytes fail
    afterwards, the file is removed again and the error raised, so a failed call
    consumes nothing (a crash in that window leaves a short file, which readers
    report as corrupt and which still blocks any second create: fail closed).
    """
    with typed_storage_errors(path):
        return _create_exclusive(path, data)


def _create_exclusive(path: Path, data: bytes) -> bool:
    try:
        fd = _in_its_directory(path, lambda: os.open(path, _EXCLUSIVE_FLAGS, 0o644))
    except FileExistsError:
        return False
    try:
        write_fsynced(fd, data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    fsync_dir(path.parent)
    return True


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def remove(path: Path) -> bool:
    """Delete ``path`` durably; True when it existed."""
    with typed_storage_errors(path):
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
    return True
