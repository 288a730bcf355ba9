"""A LIVE run on PostgreSQL that fails mid-cut, with planted passwords: no output holds them.

A private cluster (this test stops and restarts it) where ``cutter_writer`` and
``cutter_control`` must give a real password (scram-sha-256), so the password matters.
The daemon gets both: ``--dsn`` as a URI with the password in its userinfo,
``--control-dsn`` as libpq key=value pairs with a quoted password. A run is started
LIVE and approved at SG_1 through the CLI while a SHARE lock holds the ``ius`` table, so leg A
cannot finish; once leg A has started, the server is stopped — every session killed,
the walk fails mid-cut, and the daemon logs the failures with their tracebacks. The
CLI is run with the planted DSNs while the server is down; then the server comes back
and a second daemon recovers the run. Then every output is searched for either
password, raw and URL-encoded: the daemons' log files, stdout and stderr, every CLI's
stdout and stderr, every file under the state directory, every KB doc and run sidecar
in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from tests.daemon._drive import DOC_ID, REVIEWER, LogWaits, add_document
from tests.daemon.conftest import ROOT
from tests.inputs import missing_input
from tests.pg.cluster import PORT, TempCluster, find_bindir
from tests.pg.conftest import migrate_with_roles

pytestmark = pytest.mark.subprocess

WRITER_SECRET = "Wr1ter-pl4nted-9f3a"
CONTROL_SECRET = "C0ntrol pl4nted 7e1b"  # a space: quoted in the key=value DSN
SECRETS = [WRITER_SECRET, CONTROL_SECRET, quote(WRITER_SECRET), quote(CONTROL_SECRET)]
DATABASE = "kb"
WAIT_S = 60.0


@pytest.fixture
def cluster() -> Iterator[TempCluster]:
    """A cluster of this test's own: stopping it must not stop anyone else's tests."""
    bindir = find_bindir()
    if bindir is None:
        missing_input("PostgreSQL server binaries (initdb, pg_ctl, postgres)")
    server = TempCluster(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _prepare(server: TempCluster) -> tuple[str, str, str]:
    """The database migrated, both logins with a planted password they must give; the
    superuser's DSN (trusted) and the daemon's two DSNs."""
    admin = server.dsn(DATABASE)

    async def setup() -> None:
        conn = await asyncpg.connect(server.dsn("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await conn.close()
        await migrate_with_roles(admin)
        conn = await asyncpg.connect(admin)
        try:
            for role, secret in (
                ("cutter_writer", WRITER_SECRET),
                ("cutter_control", CONTROL_SECRET),
            ):
                literal = secret.replace("'", "''")
                await conn.execute(f"ALTER ROLE {role} PASSWORD '{literal}'")
        finally:
            await conn.close()

    asyncio.run(setup())
    server.require_password("cutter_writer", "cutter_control")
    sock = str(server.socket_dir)
    userinfo = f"cutter_writer:{quote(WRITER_SECRET, safe='')}"
    writer = f"postgresql://{userinfo}@/{DATABASE}?host={sock}&port={PORT}"
    control = (
        f"host={sock} port={PORT} dbname={DATABASE} user=cutter_control password='{CONTROL_SECRET}'"
    )
    return admin, writer, control


class LoggedDaemon(LogWaits):
    """``cutter daemon --log FIFO``: a thread copies every log line into ``log_copy`` and
    records it, so log lines can be waited for; stdout and stderr go to files."""

    def __init__(self, state_dir: Path, name: str, *args: str) -> None:
        self.events = []
        self._seen = threading.Condition()
        self._ended = False
        base = state_dir.parent
        fifo = base / f"{name}.fifo"
        os.mkfifo(fifo)
        self.log_copy = base / f"{name}.log"
        self.stdout = base / f"{name}.stdout"
        self.stderr = base / f"{name}.stderr"
        self._reader = threading.Thread(target=self._read, args=(fifo,), daemon=True)
        self._reader.start()
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "cutter", "daemon"),
                    *("--state-dir", str(state_dir), "--log", str(fifo), *args),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=_environment(),
                cwd=ROOT,
            )
        self._fifo = fifo
        try:
            self.wait_named("daemon_started")
        except AssertionError:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_S)
        if self._reader.is_alive():  # the daemon never opened its log: free the reader
            with contextlib.suppress(OSError):
                os.close(os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK))

    def exit_code(self) -> int | None:
        return self.process.poll()

    def _read(self, fifo: Path) -> None:
        with fifo.open("rb") as log, self.log_copy.open("wb") as copy:
            for raw in log:
                copy.write(raw)
                copy.flush()
                self._record(raw)
        self._log_ended()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=WAIT_S)
        self._reader.join(timeout=WAIT_S)
        return code


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "CUTTER_"))}
    return {**env, "PYTHONPATH": str(ROOT)}


class Terminal:
    """Every CLI command run, with what it printed."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.outputs: list[tuple[str, str]] = []

    def run(self, *args: str, socket: bool = True) -> subprocess.CompletedProcess[str]:
        where = ["--socket", str(self.socket)] if socket else []
        done = subprocess.run(
            [sys.executable, "-m", "cutter", *args, *where],
            capture_output=True,
            text=True,
            env=_environment(),
            cwd=ROOT,
            timeout=WAIT_S * 2,
            check=False,
        )
        # What it printed, under a label that is not the command line (which holds the DSN).
        self.outputs.append((f"cutter {' '.join(args[:2])}", done.stdout + done.stderr))
        return done


def _database_records(admin: str) -> list[bytes]:
    async def read() -> list[bytes]:
        conn = await asyncpg.connect(admin)
        try:
            docs = await conn.fetch("SELECT kb_id, doc FROM kb_docs")
            runs = await conn.fetch("SELECT run_id, sidecar FROM runs")
            approvals = await conn.fetch("SELECT * FROM db_approvals")
        finally:
            await conn.close()
        return (
            [r["kb_id"].encode() + bytes(r["doc"]) for r in docs]
            + [bytes(r["sidecar"]) for r in runs]
            + [repr(dict(r)).encode() for r in approvals]
        )

    return asyncio.run(read())


def _leaks(name: str, data: bytes) -> list[str]:
    return [f"{name} holds {s!r}" for s in SECRETS if s.encode() in data]


def test_a_live_run_failing_mid_cut_leaves_no_planted_password_in_any_output(
    cluster: TempCluster, tmp_path: Path
) -> None:
    admin, writer, control = _prepare(cluster)
    state = tmp_path / "state"
    terminal = Terminal(state / "daemon.sock")

    # The password matters: without it, and with a wrong one, the login is refused.
    wrong = writer.replace(quote(WRITER_SECRET, safe=""), "Wr0ng-pl4nted")
    refused = terminal.run("db", "migrate", "--dsn", wrong, socket=False)
    assert refused.returncode == 1
    assert "password authentication failed" in refused.stderr
    assert "Wr0ng-pl4nted" not in refused.stdout + refused.stderr
    add_document(dsn=admin)

    daemons: list[LoggedDaemon] = []
    try:
        args = ("--dsn", writer, "--control-dsn", control, "--enable-execution")
        first = LoggedDaemon(state, "first", *args)
        daemons.append(first)
        started = terminal.run("start", DOC_ID, "--live", "--by", "operator-ann", "--json")
        assert started.returncode == 0, started.stderr
        run = json.loads(started.stdout)["run"]
        assert run["state"] == "AWAITING_CUT_AUTHORIZATION"
        run_id, digest = run["run_id"], run["waiting"]["request_digest"]

        # Leg A cannot write a row while the lock is held (reads go on); the server stops under it.
        locked = threading.Event()
        approve_done: list[subprocess.CompletedProcess[str]] = []

        async def hold_lock_until_halt() -> None:
            conn = await asyncpg.connect(admin)
            await conn.execute("BEGIN; LOCK TABLE ius IN SHARE MODE")
            locked.set()
            try:
                await conn.fetchval("SELECT pg_sleep(600)")  # ends when the server stops
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                pass
            finally:
                conn.terminate()

        holder = threading.Thread(target=asyncio.run, args=(hold_lock_until_halt(),))
        holder.start()
        assert locked.wait(WAIT_S)
        approver = threading.Thread(
            target=lambda: approve_done.append(
                terminal.run(
                    *("approve", run_id, "--gate", "SG_1", "--request-digest", digest),
                    *("--approver", REVIEWER, "--reason", "plan checked"),
                )
            )
        )
        approver.start()
        first.wait_event(
            lambda e: e.get("event") == "phase_started" and e.get("phase") == "cut_leg_a",
            "leg A started",
        )
        cluster.halt()
        holder.join(WAIT_S)
        approver.join(WAIT_S * 2)
        (approved,) = approve_done

        # With the server down: the CLI on the planted DSNs, and the daemon asked.
        for dsn in (writer, control):
            down = terminal.run(
                "verify-ledger", "--state-dir", str(tmp_path / "v"), "--dsn", dsn, socket=False
            )
            assert down.returncode == 1
            assert "E_STORE_UNAVAILABLE" in down.stderr
        terminal.run(*("approve", run_id, "--gate", "SG_1", "--reason", "x", "--dsn", control))
        terminal.run("status", run_id)
        terminal.run("runs")

        cluster.resume()
        assert first.stop() in (0, 1)
        second = LoggedDaemon(state, "second", *args)
        daemons.append(second)
        if run_id in second.recovering():
            second.wait_stopped(run_id)
        after = terminal.run("status", run_id, "--json")
        assert after.returncode == 0, after.stderr
        assert second.stop() == 0
    finally:
        for daemon in daemons:
            daemon.kill()

    # It failed mid-cut, and the failure was logged with its tracebacks.
    logged = [e for d in daemons for e in d.events]
    frames = [
        frame["name"]
        for event in logged
        for exc in event.get("exception", ())
        for frame in exc["frames"]
    ]
    assert "cut_leg_a" in frames, "leg A's failure was not logged with its traceback"
    failed_walk = approved.stdout + approved.stderr
    assert approved.returncode != 0 or "FAILED" in failed_walk, failed_walk

    leaks: list[str] = []
    for daemon in daemons:
        for path in (daemon.log_copy, daemon.stdout, daemon.stderr):
            leaks += _leaks(str(path), path.read_bytes())
    for label, output in terminal.outputs:
        leaks += _leaks(label, output.encode())
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_socket() and not path.is_fifo():
            leaks += _leaks(str(path), path.read_bytes())
    records = _database_records(admin)
    assert records, "the run left nothing in the database"
    for record in records:
        leaks += _leaks(f"database record {record[:60]!r}", record)
    assert leaks == []
