"""No DSN password leaves the process: the redactor on every DSN form, the log pipeline
(no frame locals, every value scrubbed), the CLI's console logging, owner-only log files,
and key=value DSNs made into what asyncpg parses."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import asyncpg.connect_utils
import pytest
import structlog

from cutter.core.secrets import DsnInvalid, parse_key_value, redact_dsn, scrub, to_asyncpg
from cutter.runtime.logs import configure_console, configure_json, get_logger, open_private_log

SECRET = "Pl4nted-S3cret"

# Every form a DSN's password takes; each maps to what the redacted DSN must read.
FORMS = [
    (
        f"postgresql://writer:{SECRET}@db.example:5432/kb",
        "postgresql://writer:***@db.example:5432/kb",
    ),
    (f"postgres://:{SECRET}@/kb?host=/run/pg", "postgres://:***@/kb?host=/run/pg"),
    (f"POSTGRESQL://w:{SECRET}@h/kb", "postgresql://w:***@h/kb"),
    # A raw '@' in the password: everything up to the authority's last '@' goes.
    (f"postgresql://w:a@{SECRET}@h/kb", "postgresql://w:***@h/kb"),
    (f"postgresql://w:{SECRET}%40x@h/kb", "postgresql://w:***@h/kb"),
    (
        f"postgresql://u@/kb?host=/nonexistent&password={SECRET}",
        "postgresql://u@/kb?host=/nonexistent&password=***",
    ),
    (
        f"postgresql://u@/kb?password={SECRET}&host=/x&sslpassword={SECRET}",
        "postgresql://u@/kb?password=***&host=/x&sslpassword=***",
    ),
    (f"host=/tmp user=u password={SECRET} dbname=kb", "host=/tmp user=u password=*** dbname=kb"),
    (f"host=/tmp password = '{SECRET} x' dbname=kb", "host=/tmp password=*** dbname=kb"),
    (f"password='{SECRET}\\' q' host=h", "password=*** host=h"),
    (f"host=h PASSWORD={SECRET}", "host=h password=***"),
    (f"host=h sslpassword={SECRET}", "host=h sslpassword=***"),
]


@pytest.mark.parametrize(("dsn", "shown"), FORMS)
def test_redact_dsn_hides_the_password_of_every_form(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown
    assert SECRET not in redact_dsn(dsn)


@pytest.mark.parametrize(("dsn", "_shown"), FORMS)
def test_scrub_finds_the_password_of_every_form_inside_text(dsn: str, _shown: str) -> None:
    """In a sentence, in a repr (as a traceback's locals showed it), in a tuple's repr."""
    for text in (f"cannot connect to {dsn}: refused", repr(dsn), repr((dsn, 5)), f"'{dsn}'"):
        assert SECRET not in scrub(text), text


def test_scrub_masks_an_environment_password_and_keeps_innocent_text() -> None:
    assert scrub(f"PGPASSWORD={SECRET} psql") == "PGPASSWORD=*** psql"
    innocent = "cannot connect to PostgreSQL at postgresql://u@/kb?host=/x: refused"
    assert scrub(innocent) == innocent
    # Scrubbing a redacted DSN again changes nothing: the mask is not a value to hide.
    redacted = redact_dsn(f"postgresql://u@/kb?password={SECRET}&host=/x")
    assert scrub(redacted) == redacted == "postgresql://u@/kb?password=***&host=/x"
    assert redact_dsn("postgresql://u@h/kb") == "postgresql://u@h/kb"
    assert redact_dsn("not a dsn at all") == "not a dsn at all"


def test_key_value_dsn_becomes_the_uri_asyncpg_parses_to_the_same_parameters() -> None:
    uri = to_asyncpg("host=/run/pg port=5433 dbname=kb user=w password='p w\\'x' sslmode=disable")
    assert uri.startswith("postgresql://?")
    addrs, params = asyncpg.connect_utils._parse_connect_dsn_and_args(
        dsn=uri,
        host=None,
        port=None,
        user=None,
        password=None,
        passfile=None,
        database=None,
        ssl=None,
        service=None,
        servicefile=None,
        direct_tls=None,
        server_settings=None,
        target_session_attrs=None,
        krbsrvname=None,
        gsslib=None,
    )
    assert addrs == ["/run/pg/.s.PGSQL.5433"]
    assert (params.user, params.password, params.database) == ("w", "p w'x", "kb")
    # A URI is given to asyncpg as it is.
    assert to_asyncpg(" postgresql://u@h/kb ") == "postgresql://u@h/kb"


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        ("host=h connect_timeout=3", "'connect_timeout' is not supported"),
        (f"host=h password='{SECRET}", "no closing quote"),
        (f"mysql://u:{SECRET}@h/kb", "not a PostgreSQL DSN"),
        ("   ", "empty DSN"),
    ],
)
def test_a_dsn_asyncpg_cannot_take_is_refused_typed_without_its_secret(dsn: str, says: str) -> None:
    with pytest.raises(DsnInvalid) as refused:
        to_asyncpg(dsn)
    assert refused.value.code == "E_DSN_INVALID"
    assert says in refused.value.message
    assert SECRET not in refused.value.message


def test_parse_key_value_handles_quotes_escapes_and_spacing() -> None:
    assert parse_key_value("a=1  b = 'x y' c=\\'d e=''") == [
        ("a", "1"),
        ("b", "x y"),
        ("c", "'d"),
        ("e", ""),
    ]


def _fails_with_a_dsn_in_its_locals(dsn: str) -> None:
    connection_args = (dsn, {"password": SECRET})
    raise RuntimeError(f"lost {len(connection_args)}")


def test_json_log_renders_an_exception_without_locals_and_scrubs_every_value() -> None:
    """The issue's leak: ``"locals": {"args": "('postgresql://postgres:SECRET@/kb?…"``."""
    stream = io.StringIO()
    configure_json(stream)
    log = get_logger()
    try:
        _fails_with_a_dsn_in_its_locals(f"postgresql://postgres:{SECRET}@/kb?host=/x")
    except RuntimeError:
        log.exception("command_failed", dsn=f"host=/x password={SECRET}")
    try:
        raise ValueError(f"bad postgresql://u:{SECRET}@h/kb")
    except ValueError as exc:
        log.error("phase_failed", exc_info=exc, seen=[f"?password={SECRET}", {"k": (f"{SECRET}",)}])
    text = stream.getvalue()
    assert text.count(SECRET) == 1  # the bare value under "k": nothing says it is a password
    failed, phase = (json.loads(line) for line in text.splitlines())
    frames = [f for e in failed["exception"] for f in e["frames"]]
    assert [f["name"] for f in frames][-1] == "_fails_with_a_dsn_in_its_locals"
    assert all("locals" not in f for f in frames)
    assert failed["dsn"] == "host=/x password=***"
    assert phase["exception"][0]["exc_value"] == "bad postgresql://u:***@h/kb"
    assert phase["seen"] == ["?password=***", {"k": [SECRET]}]


def test_console_logging_of_the_cli_prints_an_exception_as_one_scrubbed_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    structlog.reset_defaults()
    try:
        configure_console()
        try:
            _fails_with_a_dsn_in_its_locals(f"postgresql://postgres:{SECRET}@/kb")
        except RuntimeError:
            get_logger().exception("failed", dsn=f"postgresql://postgres:{SECRET}@/kb")
    finally:
        structlog.reset_defaults()
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "Traceback" not in out
    assert "connection_args" not in out
    assert "RuntimeError: lost 2" in out
    assert "postgresql://postgres:***@/kb" in out


def test_a_log_file_is_created_owner_only_and_an_existing_one_is_tightened(
    tmp_path: Path,
) -> None:
    old_umask = os.umask(0o022)
    try:
        made = tmp_path / "new.log"
        with open_private_log(made) as log:
            log.write("one\n")
        existing = tmp_path / "old.log"
        existing.write_text("before\n")
        existing.chmod(0o644)
        with open_private_log(existing) as log:
            log.write("after\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    assert existing.read_text() == "before\nafter\n"
