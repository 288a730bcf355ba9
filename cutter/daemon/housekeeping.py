"""What the daemon does to its state directory at start and at exit, besides serving.

At start (it owns the directory): remove the temp files a crash left
(``cutter.stores.sweep``). At exit: remove the socket file; when the directory
has become read-only meanwhile that cannot be done, which is logged with its
code and does not change the exit status (the next start removes a stale socket).
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread

from cutter.logs import Logger
from cutter.stores.storage_errors import storage_error
from cutter.stores.sweep import sweep_temps


async def sweep_state_dir(state_dir: Path, log: Logger) -> None:
    removed = await anyio.to_thread.run_sync(sweep_temps, state_dir)
    if removed:
        log.info("temp_files_removed", count=len(removed), first=str(removed[0]))


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
