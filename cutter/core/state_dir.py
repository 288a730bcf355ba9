"""The layout of a state directory, in one place: what ``cutter daemon --state-dir
DIR`` (and ``demo``, ``add-document``, ``doctor``, ``verify-ledger``) keep there.

- ``cutter.sqlite3``: the embedded database (``cutter.assembly.embedded``), with
  SQLite's ``-wal`` and ``-shm`` files beside it;
- ``owner.pid``: the owner lock, held by one live process (``cutter.stores.owner``);
- ``daemon.sock``: the daemon's Unix socket (``cutter.daemon.main``), the one entry a
  shared socket group may reach;
- ``hooks``: executables run at a run's events (``cutter.runtime.hook_dir``), unless
  the daemon names another directory (``--hooks-dir``);
- ``kb``, ``runs``, ``target``, ``kill-switch``: what the file stores of earlier
  cutters left, refused (``cutter.assembly.embedded.check_layout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class StateDir:
    root: Path

    DATABASE: ClassVar[str] = "cutter.sqlite3"
    OWNER_LOCK: ClassVar[str] = "owner.pid"
    SOCKET: ClassVar[str] = "daemon.sock"
    HOOKS: ClassVar[str] = "hooks"
    OLD_LAYOUT: ClassVar[tuple[str, ...]] = ("kb", "runs", "target", "kill-switch")

    @property
    def database(self) -> Path:
        return self.root / self.DATABASE

    @property
    def owner_lock(self) -> Path:
        return self.root / self.OWNER_LOCK

    @property
    def socket(self) -> Path:
        return self.root / self.SOCKET

    @property
    def hooks(self) -> Path:
        return self.root / self.HOOKS

    @property
    def old_layout(self) -> tuple[Path, ...]:
        return tuple(self.root / name for name in self.OLD_LAYOUT)


# The CLI's default: ``.cutter`` in the working directory (its socket is the default
# of every command that talks to a daemon).
DEFAULT = StateDir(Path(".cutter"))
