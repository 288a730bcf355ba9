"""The hooks directory: executables named exactly for a hook event
(``cutter.core.hook_names``), by default ``<state dir>/hooks`` (``StateDir.hooks``).

What is run from it must be what its owner put there, as for the state directory's
other files: the directory, and a hook in it, must belong to this process's user (or
root) and be writable by nobody else (no group or other write bit). Otherwise
``HooksDirUnsafe``: the daemon refuses to start, and at an event no hook of the
directory is run — a ``before_*`` event then stops the run (``STOP_HOOK_FAILED``).
A missing directory holds no hooks. A file whose name is no event, or a hook that is
not an executable regular file, is ignored with a warning (``hook_ignored``).

Every function here blocks briefly (a few ``stat`` calls).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cutter.core.errors import HooksDirUnsafe
from cutter.core.hook_names import HookEvent
from cutter.runtime.logs import Logger

_NAMES = frozenset(event.value for event in HookEvent)


def _check_owned(path: Path, what: str, st: os.stat_result) -> None:
    if st.st_uid not in (os.geteuid(), 0):
        raise HooksDirUnsafe(str(path), f"{what} belongs to uid {st.st_uid}, not to this user")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(st.st_mode)
        raise HooksDirUnsafe(str(path), f"{what} is writable by others (mode {mode:04o})")


def check_hooks_dir(path: Path, log: Logger) -> bool:
    """Check the directory (``HooksDirUnsafe``) and warn of every entry that is no hook;
    False when there is no directory. What the daemon does at start."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise HooksDirUnsafe(str(path), exc.strerror or type(exc).__name__) from None
    if not stat.S_ISDIR(st.st_mode):
        raise HooksDirUnsafe(str(path), "it is not a directory")
    _check_owned(path, "the directory", st)
    for entry in sorted(os.listdir(path)):
        if entry not in _NAMES:
            log.warning("hook_ignored", path=str(path / entry), reason="not a hook event's name")
        else:
            hook_for(path, HookEvent(entry), log)
    return True


def hook_for(directory: Path | None, event: HookEvent, log: Logger) -> Path | None:
    """The directory's hook for ``event``, checked, as an absolute path (a hook runs in
    ``/``, so a directory named relative to where the daemon started still finds it);
    None when there is none (or it is not an executable regular file: warned).
    ``HooksDirUnsafe`` when the directory or the hook could be written by someone else."""
    if directory is None:
        return None
    directory = directory.absolute()
    try:
        dir_st = directory.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HooksDirUnsafe(str(directory), exc.strerror or type(exc).__name__) from None
    _check_owned(directory, "the directory", dir_st)
    path = directory / event.value
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HooksDirUnsafe(str(path), exc.strerror or type(exc).__name__) from None
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        log.warning("hook_ignored", path=str(path), reason="not an executable regular file")
        return None
    _check_owned(path, "the hook", st)
    return path
