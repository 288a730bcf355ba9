"""Every command that takes a DSN, given one with a planted password and no server behind
it: one typed line on stderr, the DSN redacted, the password nowhere in any output.

The commands run as real processes (``python -m cutter``): what a terminal would show."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Pl4nted-S3cret"
# Nothing listens at either: a socket directory that does not exist, TCP port 1.
NO_SOCKET = "/nonexistent-cutter-socket-dir"

DSN_FORMS = {
    "uri-userinfo": f"postgresql://writer:{SECRET}@/kb?host={NO_SOCKET}",
    "uri-query": f"postgresql://writer@/kb?host={NO_SOCKET}&password={SECRET}",
    "key-value": f"host={NO_SOCKET} dbname=kb user=writer password={SECRET}",
    # The half redaction: the part after the space went out.
    "key-value-quoted": f"host={NO_SOCKET} dbname=kb user=writer password='x {SECRET}'",
    "tcp": f"postgresql://writer:{SECRET}@127.0.0.1:1/kb",
}
SAMPLE_RUN = "run-20261206-000000-abcdef"


def _cutter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [sys.executable, "-m", "cutter", *args],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def _commands(dsn: str, tmp: Path) -> dict[str, list[str]]:
    doc = tmp / "doc.txt"
    return {
        "db migrate": ["db", "migrate", "--dsn", dsn],
        "db roles": ["db", "roles", "--dsn", dsn],
        "approve --dsn": [
            *("approve", SAMPLE_RUN, "--gate", "SG_1", "--reason", "checked"),
            *("--dsn", dsn, "--socket", str(tmp / "no.sock")),
        ],
        "add-document --dsn": ["add-document", "--dsn", dsn, "doc", str(doc)],
        "demo --dsn": ["demo", "--state-dir", str(tmp / "demo"), "--dsn", dsn],
        "verify-ledger --dsn": ["verify-ledger", "--state-dir", str(tmp / "vl"), "--dsn", dsn],
        "daemon --dsn": ["daemon", "--state-dir", str(tmp / "d1"), "--dsn", dsn],
        "daemon --control-dsn": [
            *("daemon", "--state-dir", str(tmp / "d2")),
            *("--dsn", DSN_FORMS["uri-userinfo"], "--control-dsn", dsn),
        ],
    }


# Every command with every form; the daemon (slower to start) with two forms.
CASES = [
    (command, form)
    for command in _commands("x", Path("/nonexistent"))
    for form in DSN_FORMS
    if not command.startswith("daemon") or form in ("uri-query", "key-value-quoted")
]


@pytest.mark.parametrize(("command", "form"), CASES)
def test_a_command_given_an_unreachable_dsn_fails_typed_and_never_shows_the_password(
    command: str, form: str, tmp_path: Path
) -> None:
    (tmp_path / "doc.txt").write_text("1. One\n2. Two\n")
    args = _commands(DSN_FORMS[form], tmp_path)[command]
    done = _cutter(*args, cwd=tmp_path)
    said = done.stdout + done.stderr
    assert SECRET not in said, said
    assert done.returncode == 1, said
    assert "Traceback" not in said
    (line,) = done.stderr.strip().splitlines()[-1:]
    # ``Error: CODE: …`` (click's) or ``CODE: …`` (the daemon client's).
    assert line.removeprefix("Error: ").startswith(
        "E_STORE_UNAVAILABLE: cannot connect to PostgreSQL at "
    ), said
    assert "***" in line  # the DSN is named, its password masked
    # Nothing the command left behind holds it either.
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_socket():
            assert SECRET.encode() not in path.read_bytes(), path


def test_the_daemon_log_file_is_owner_only_and_free_of_the_password(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    log.write_text("")
    log.chmod(0o644)
    dsn = DSN_FORMS["key-value-quoted"]
    done = _cutter(
        *("daemon", "--state-dir", str(tmp_path / "state"), "--log", str(log), "--dsn", dsn),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert SECRET not in done.stdout + done.stderr + log.read_text()
    assert "password=***" in done.stderr
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_an_unsupported_key_value_dsn_is_refused_typed_before_connecting(tmp_path: Path) -> None:
    done = _cutter(
        "db", "migrate", "--dsn", f"host=h password={SECRET} connect_timeout=3", cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: E_DSN_INVALID: the DSN keyword 'connect_timeout' is not supported (asyncpg takes "
        "application_name, dbname, gsslib, host, krbsrvname, passfile, password, port, service, "
        "ssl_max_protocol_version, ssl_min_protocol_version, sslcert, sslcrl, sslkey, sslmode, "
        "sslpassword, sslrootcert, target_session_attrs, user)"
    )


def test_the_dsn_help_offers_only_forms_that_work(tmp_path: Path) -> None:
    done = _cutter("db", "migrate", "--help", cwd=tmp_path)
    assert "key=value" in done.stdout
    assert "PGPASSWORD" in done.stdout
