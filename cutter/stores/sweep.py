"""Remove the temp files a crash left in a state directory.

``write_atomic`` and ``create_once`` write ``.<target>.<12 hex>.tmp`` beside their
target and rename or link it; a process killed in between leaves the temp file,
which no store lists but which would otherwise stay for ever. At start the
daemon (which owns the directory) walks it and removes every regular file with
exactly that name shape, never following a symlink and never anything else.

``add-document`` may write into an owned state directory, so a temp file younger
than ``MIN_AGE_SECONDS`` may be a write in progress and is left for the next start.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

from cutter.stores.atomic import TEMP_SUFFIX

MIN_AGE_SECONDS = 60
TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}" + re.escape(TEMP_SUFFIX))


def is_temp_name(name: str) -> bool:
    return TEMP_NAME.fullmatch(name) is not None


def sweep_temps(root: Path, now: float | None = None) -> list[Path]:
    """Remove crash-left temp files below ``root`` older than ``MIN_AGE_SECONDS``;
    the paths removed. A file that vanishes or resists is skipped, not an error."""
    cutoff = (time.time() if now is None else now) - MIN_AGE_SECONDS
    removed: list[Path] = []
    for directory, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            if not is_temp_name(name):
                continue
            path = Path(directory, name)
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
                    continue
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed
