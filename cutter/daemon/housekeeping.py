"""What the daemon does to its state directory at exit, besides serving.

At exit: remove the socket file; when the directory has become read-only
meanwhile that cannot be done, which is logged with its code and does not change
the exit status (the next start removes a stale socket). Nothing is swept at
start: the database (SQLite's journal) leaves no temp files of ours behind.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread

from cutter.runtime.logs import Logger
from cutter.stores.storage_errors import storage_error


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


async def remove_socket(path: Path, log: Logger) -> None:
    try:
        await anyio.to_thread.run_sync(_unlink, path)
    except OSError as exc:
        typed = storage_error(exc, path)
        log.warning(
            "socket_not_removed",
            socket=str(path),
            code=typed.code if typed is not None else "E_STORAGE",
            reason=exc.strerror or type(exc).__name__,
        )
