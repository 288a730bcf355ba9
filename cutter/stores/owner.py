"""One owner per state directory, as PostgreSQL keeps a second server off its data directory.

The embedded database is SQLite's, whose locks keep two processes' writes whole,
so a short command (``cutter add-document``, ``doctor``, ``verify-ledger``) may
use it beside a daemon. But a daemon walks every run it finds in its state
directory (recovery at start, its in-process one-walk-per-run guard): two daemons
on one directory would walk the same runs at once. So whatever runs a ``Runner``
on a state directory (``cutter daemon`` on any transport, ``cutter demo``) first
calls ``claim``: an exclusive ``flock`` on ``<state_dir>/owner.pid``, held until
``release`` or the process's end. A second claimant gets ``StateDirBusy`` naming
the pid the file holds.

- ``flock``, not ``fcntl``/``lockf``: a POSIX record lock belongs to the process
  and is dropped when *any* descriptor of the file is closed, by any code.
  A ``flock`` belongs to this one open file description, which nothing else
  closes (and ``os.open`` makes it close-on-exec, so no child inherits it).
- The kernel drops the lock when the process dies, however it dies: a pid left
  in the file by ``kill -9`` never blocks the next owner. The file is read only
  to name a holder whose lock is live.
- The file is opened without ``O_TRUNC`` (a refused claimant must not erase the
  owner's pid) and never removed: unlinking a lock file lets one process hold the
  lock on the old inode while another creates and locks a new one.
- The pid is written after the lock is taken; a claimant that looks in between
  reads an empty file and says the pid is not known yet. A clean ``release``
  empties the file before dropping the lock.

Every function here blocks briefly (a few system calls, no waiting: the lock is
tried, never waited for).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from cutter.core.errors import StateDirBusy, StateDirUnusable, one_line
from cutter.core.state_dir import StateDir
from cutter.stores.storage_errors import storage_error

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # no O_TRUNC: see above
_HOLDER_LIMIT = 120  # the holder's description, as read back from the file


class StateDirOwner:
    """The held lock on one state directory; a context manager that releases it."""

    def __init__(self, state_dir: Path, fd: int) -> None:
        self.state_dir = state_dir
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the pid file, then drop the lock (closing the only descriptor does)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # the lock is dropped all the same; a stale pid never blocks anyone
        finally:
            os.close(fd)

    def __enter__(self) -> StateDirOwner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def make_state_dir(state_dir: Path) -> None:
    """``mkdir -p`` the state directory (new directories 0700); ``StateDirUnusable``
    when it cannot be (a path below a regular file, a file in its place, no right)."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirUnusable(str(state_dir), exc.strerror or type(exc).__name__) from None


def claim(state_dir: Path, holder: str) -> StateDirOwner:
    """Own ``state_dir`` (made if missing) for this process; ``holder`` says what the
    owner is (``cutter daemon --stdio``) to whoever is refused. ``StateDirBusy`` when
    a live process owns it; ``StateDirUnusable`` when it cannot be made or locked."""
    make_state_dir(state_dir)
    path = StateDir(state_dir).owner_lock
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o600)
    except OSError as exc:  # a read-only or full state directory says so (typed)
        raise storage_error(exc, path) or StateDirUnusable(
            str(state_dir), f"{path}: {exc.strerror}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        try:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                pid, named = _read_holder(fd)
                raise StateDirBusy(str(state_dir), str(path), pid, named) from None
            raise StateDirUnusable(str(state_dir), f"{path}: {exc.strerror}") from None
        finally:
            os.close(fd)  # not ours: closing it releases nothing
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{one_line(holder, _HOLDER_LIMIT)}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise storage_error(exc, path) or StateDirUnusable(
            str(state_dir), f"{path}: {exc.strerror}"
        ) from None
    return StateDirOwner(state_dir, fd)


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    """The pid and description the owner wrote; (None, None) before it wrote them."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
    except OSError:
        return None, None
    lines = text.splitlines()
    pid_text = lines[0].strip() if lines else ""
    plain = pid_text.isascii() and pid_text.isdigit() and len(pid_text) <= 10
    pid = int(pid_text) if plain else None
    named = one_line(lines[1], _HOLDER_LIMIT) if len(lines) > 1 and lines[1].strip() else None
    return pid, named
