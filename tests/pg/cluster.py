"""A throwaway PostgreSQL cluster for the tests, shaped like asyncpg's ``cluster.py``.

``initdb`` into a fresh temporary directory, a private unix socket, no TCP listener,
fsync off, trust authentication; ``pg_ctl -w`` waits until the server accepts
connections; ``stop()`` kills it and removes every file it made.

initdb and the server refuse to run as root: when the tests run as root, both run as
the ``postgres`` OS user (which Debian's ``postgresql`` package creates), in
directories chowned to it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

__all__ = ["ClusterError", "TempCluster", "find_bindir"]

SUPERUSER = "postgres"
OS_USER_WHEN_ROOT = "postgres"
PORT = 5432  # Only names the socket file: the socket directory is private, TCP is off.
START_TIMEOUT_S = 30
LOG_TAIL_LINES = 30
# A unix socket path is limited to 107 bytes: a long TMPDIR falls back to /tmp.
MAX_TMPDIR_LEN = 60

SETTINGS: Mapping[str, str] = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class ClusterError(RuntimeError):
    """The temporary cluster could not be made, started or stopped."""


def find_bindir() -> Path | None:
    """The directory holding the server binaries: ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/*/bin``; ``None`` when no directory holds ``initdb``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True))
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _major(bindir: Path) -> int:
    name = bindir.parent.name
    return int(name) if name.isdigit() else -1


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class TempCluster:
    """One private PostgreSQL server; ``start()`` once, ``stop()`` always."""

    def __init__(self, bindir: Path, *, settings: Mapping[str, str] | None = None) -> None:
        self.bindir = bindir
        self._settings = {**SETTINGS, **(settings or {})}
        self._root: Path | None = None
        self._as_user: str | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            raise ClusterError("the cluster has not been started")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def start(self) -> None:
        """Make the cluster and start it; on failure, clean up and raise `ClusterError`."""
        if self._root is not None:
            raise ClusterError("the cluster was already started")
        self._as_user = self._os_user()
        tmp = tempfile.gettempdir()
        parent = tmp if len(tmp) <= MAX_TMPDIR_LEN else "/tmp"
        self._root = Path(tempfile.mkdtemp(prefix="cutter-pg-", dir=parent))
        try:
            self.socket_dir.mkdir()
            if self._as_user is not None:
                for path in (self.root, self.socket_dir):
                    shutil.chown(path, user=self._as_user, group=self._group())
            self._run(
                "initdb",
                *("-D", str(self.data_dir), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8"),
                *("--locale=C", "--no-sync", "--no-instructions"),
            )
            settings = {
                **self._settings,
                "port": str(PORT),
                "unix_socket_directories": str(self.socket_dir),
            }
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("\n# tests/pg/cluster.py\n")
                conf.writelines(f"{k} = {_conf_value(v)}\n" for k, v in settings.items())
            self._run(
                "pg_ctl",
                *("-D", str(self.data_dir), "-l", str(self.log_file)),
                *("-w", "-t", str(START_TIMEOUT_S), "start"),
            )
        except BaseException:
            with contextlib.suppress(ClusterError):
                self.stop()
            raise

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """A libpq URI to ``database`` as ``user`` through the private socket."""
        user, database = quote(user, safe=""), quote(database, safe="")
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{user}@/{database}?host={host}&port={PORT}"

    def halt(self) -> None:
        """Stop the server (``-m fast``: every session is terminated), keeping its files."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server ``halt`` stopped, and wait until it accepts connections."""
        self._run(
            "pg_ctl",
            *("-D", str(self.data_dir), "-l", str(self.log_file)),
            *("-w", "-t", str(START_TIMEOUT_S), "start"),
        )

    def require_password(self, *roles: str) -> None:
        """``roles`` must give their password (scram-sha-256) on the socket; everyone else
        is still trusted. The server is restarted, so the rule holds once this returns."""
        hba = self.data_dir / "pg_hba.conf"
        line = f"local all {','.join(roles)} scram-sha-256\n"
        hba.write_text(line + hba.read_text())  # the first matching line wins
        self.halt()
        self.resume()

    def stop(self) -> None:
        """Kill the server (``-m immediate``) and remove its files; safe to call twice."""
        if self._root is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty server log)"

    def _run(self, program: str, *args: str) -> None:
        cmd = [str(self.bindir / program), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        as_root = self._as_user is not None
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S * 2,
                check=False,
                user=self._as_user,
                group=self._group() if as_root else None,
                extra_groups=[] if as_root else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ClusterError(f"{program} could not run: {exc}") from exc
        if proc.returncode != 0:
            raise ClusterError(
                f"{' '.join(cmd)} exited {proc.returncode}\n"
                f"--- output ---\n{(proc.stdout + proc.stderr).strip()}\n"
                f"--- server log tail ({self.log_file}) ---\n{self.log_tail()}"
            )

    @staticmethod
    def _os_user() -> str | None:
        """The OS user initdb and the server run as: ours, or ``postgres`` when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(OS_USER_WHEN_ROOT)
        except KeyError:
            raise ClusterError(
                f"running as root, and initdb refuses root, but there is no {OS_USER_WHEN_ROOT!r}"
                " OS user to run it as: install Debian's postgresql package"
            ) from None
        return OS_USER_WHEN_ROOT

    def _group(self) -> int:
        assert self._as_user is not None
        return pwd.getpwnam(self._as_user).pw_gid
