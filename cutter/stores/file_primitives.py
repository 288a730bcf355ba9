"""Steps the file-backed target stores share (``cutter.stores.file_target``).

A write-once create, a check that a built path stays inside its store's root,
and a decode that turns an unreadable file into ``CorruptRecord`` naming it.
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

S = TypeVar("S")


def create_once(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless the name exists; True when this call did.

    The bytes are complete and fsynced in a temp file before ``os.link`` gives
    them the name (the link fails when the name exists, in any process), so the
    name never holds a partial file."""
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

    Stores build paths as ``root`` joined with validated id segments (never
    ``..``), so such a path can leave the root only through a symlink below it.
    Those few components are ``lstat``-ed; only when one is a symlink, or the path
    is not plainly below ``root``, are both resolved and compared. The answer is
    ``path.resolve().is_relative_to(root.resolve())`` in every case, without
    resolving every component of both on every access.
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (os.pardir,)
    plainly_below = os.pardir not in parts and not _symlink_below(root, parts)
    if not plainly_below and not path.resolve().is_relative_to(root.resolve()):
        raise InvalidIdentifier(kind, "resolves outside the store root")
    return path


def _symlink_below(root: Path, parts: tuple[str, ...]) -> bool:
    current = os.fspath(root)
    for part in parts:
        current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return True
        except OSError:  # missing (or unreadable): realpath stops resolving here too
            return False
    return False


def decode_record(decode: Callable[[bytes], S], data: bytes, where: Path | str) -> S:
    """``decode(data)``; undecodable bytes are ``CorruptRecord`` naming ``where``."""
    try:
        return decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(str(where), one_line(str(exc), 200)) from exc
