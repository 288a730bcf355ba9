"""Steps the file-backed target stores share (``cutter.stores.file_target``).

A write-once create, a check that a built path stays inside its store's root
(the run store and the KB use it too), and a decode that turns an unreadable
file into ``CorruptRecord`` naming it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from cutter.errors import CorruptRecord, InvalidIdentifier, one_line
from cutter.stores.atomic import fsync_dir, open_temp, write_fsynced
from cutter.stores.storage_errors import typed_storage_errors

S = TypeVar("S")


def create_once(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless the name exists; True when this call did.

    The bytes are complete and fsynced in a temp file before ``os.link`` gives
    them the name (the link fails when the name exists, in any process), so the
    name never holds a partial file. A full or read-only store: ``StorageError``."""
    with typed_storage_errors(path):
        return _create_once(path, data)


def _create_once(path: Path, data: bytes) -> bool:
    fd, tmp_name = open_temp(path)
    try:
        write_fsynced(fd, data)
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
    fsync_dir(path.parent)
    return True


def inside_root(root: Path, path: Path, kind: str) -> Path:
    """``path``, unless it resolves outside ``root`` (``InvalidIdentifier``).

    The stores build ``path`` below ``root`` from validated segments (none ``..``),
    so only a symlink below ``root`` can take it elsewhere. When no component below
    ``root`` is one, ``path`` resolves to the resolved ``root`` plus the same
    segments, which is inside: one ``lstat`` per segment proves it, instead of
    resolving both paths from ``/`` on every read. Anything else (a symlink, a
    component that cannot be examined) is resolved in full, as before."""
    if not (_no_symlink_below(root, path) or path.resolve().is_relative_to(root.resolve())):
        raise InvalidIdentifier(kind, "resolves outside the store root")
    return path


def _no_symlink_below(root: Path, path: Path) -> bool:
    base, full = str(root), str(path)  # strings: pathlib's parsing cost more than the lstats
    if not full.startswith(base + os.sep):
        return False
    current = base
    for part in full[len(base) + 1 :].split(os.sep):
        if part == "..":
            return False
        current += os.sep + part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return True  # nothing from here down exists, so nothing is a link
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            return False
    return True


def decode_record(decode: Callable[[bytes], S], data: bytes, where: Path | str) -> S:
    """``decode(data)``; undecodable bytes are ``CorruptRecord`` naming ``where``."""
    try:
        return decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(str(where), one_line(str(exc), 200)) from exc
