"""A small tmpfs and a read-only bind mount, for the storage failure tests.

Both need root and a kernel that lets the process mount (a CI container run as root
does). Without them a test skips outside CI and FAILS under ``CI=true``: a disk
that cannot be filled must not pass for one that was.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inputs import under_ci


def _mount(*args: str) -> bool:
    done = subprocess.run(["mount", *args], capture_output=True, check=False)
    return done.returncode == 0


def _cannot(why: str) -> None:
    if under_ci():
        pytest.fail(f"{why} (CI=true allows no skip here)")
    pytest.skip(why)


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "1m") -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)):
        _cannot("needs root and a kernel that lets it mount a tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` read-only (a read-only bind mount over itself) while inside: unlike
    ``chmod``, which root ignores, it refuses root too."""
    if not _mount("--bind", str(directory), str(directory)):
        _cannot("needs root and a kernel that lets it bind-mount")
    try:
        assert _mount("-o", "remount,bind,ro", str(directory))
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(mount: Path) -> Path:
    """Take every free block of ``mount``; the filler file, to delete for space again."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
    finally:
        os.close(fd)
    return filler
