"""Secrets never leave the process: the one place that redacts a PostgreSQL DSN.

Every error message, log event and line of CLI output that could carry a DSN goes
through here (docs/operations.md, "Secrets"): ``redact_dsn`` for a DSN the code
holds, ``scrub`` for any text that might quote one (an exception's message, a log
value), ``scrub_event`` as the last structlog processor before rendering. A
password is never shown, in any form: a URI's userinfo (``postgresql://u:PW@h/db``),
a URI's query (``?password=PW``, ``&sslpassword=PW``), a libpq key=value pair,
quoted or not (``password='p w'``). The password asyncpg reads from
``PGPASSWORD`` or a passfile is never logged: nothing here reads the environment.

``to_asyncpg`` makes a key=value DSN (libpq's other form, which asyncpg does not
parse) into the URI asyncpg accepts, or refuses it with ``DsnInvalid``, whose
message names the keyword at fault, never a value.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from cutter.core.errors import CutterError, ErrorCode

MASK = "***"
URI_SCHEMES = ("postgresql", "postgres")
# libpq keywords that carry a secret (a URI query or a key=value DSN).
SECRET_KEYS = frozenset({"password", "sslpassword"})
# The key=value keywords asyncpg honours as URI query parameters (application_name
# goes through as a server setting, which is what libpq does with it too).
_ASYNCPG_KEYS = frozenset(
    {
        "host",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "service",
        "application_name",
    }
)


class DsnInvalid(CutterError):
    """A DSN neither a libpq URI nor key=value pairs asyncpg can be given."""

    code = ErrorCode.DSN_INVALID


# -- free text ---------------------------------------------------------------------------

# postgresql://user:SECRET@host — greedy up to the last '@' of the authority.
_URI_USERINFO = re.compile(r"(?i)(postgres(?:ql)?://[^:/?#@\s]*:)[^/?#\s]*@")
# password=SECRET anywhere: a URI query, a key=value DSN, an environment dump
# (PGPASSWORD=…). Quoted values end at their closing quote (backslash escapes
# inside) and whatever sticks to it (a repr doubles backslashes); an unquoted one
# at whitespace — over-redacting a query's tail is fine — unless it is the mask.
_KEY_VALUE = re.compile(
    r"(?i)\b((?:ssl)?password|pgpassword)(\s*=\s*)"
    r"('(?:[^'\\]|\\.)*(?:'|$)\S*|(?!\*\*\*(?:&|\s|$))\S+)"
)


def scrub(text: str) -> str:
    """``text`` with every password a DSN in it carries masked."""
    if "://" not in text and "assword" not in text.lower():
        return text  # the common case, kept cheap: nothing could be a secret
    text = _URI_USERINFO.sub(rf"\g<1>{MASK}@", text)
    return _KEY_VALUE.sub(rf"\g<1>\g<2>{MASK}", text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def scrub_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: every string in the event (nested ones too, the rendered
    exception's included) scrubbed. Runs after the exception is rendered."""
    for key, value in event.items():
        event[key] = _scrub_value(value)
    return event


# -- one DSN -----------------------------------------------------------------------------


def is_uri(dsn: str) -> bool:
    return urlsplit(dsn.strip()).scheme.lower() in URI_SCHEMES


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, whatever its form, fit for any output."""
    if is_uri(dsn):
        return _redact_uri(dsn)
    try:
        pairs = parse_key_value(dsn)
    except DsnInvalid:
        return scrub(dsn)
    return " ".join(
        f"{key}={MASK if key in SECRET_KEYS else _quote_libpq(value)}" for key, value in pairs
    )


def _redact_uri(dsn: str) -> str:
    try:
        parts = urlsplit(dsn.strip())
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostspec = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{hostspec}" if colon else netloc
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, MASK if k.lower() in SECRET_KEYS else v) for k, v in pairs], safe="/*"
            )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return scrub(dsn)


def _quote_libpq(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")


def parse_key_value(dsn: str) -> list[tuple[str, str]]:
    """libpq's ``keyword = value`` pairs: a value is single-quoted (``\\'`` and ``\\\\``
    escape) or runs to the next whitespace (backslash escapes). ``DsnInvalid`` naming
    the position or keyword at fault, never a value."""
    pairs: list[tuple[str, str]] = []
    at = 0
    while at < len(dsn):
        if dsn[at:].strip() == "":
            break
        keyword = _KEYWORD.match(dsn, at)
        if keyword is None:
            raise DsnInvalid(
                f"not a PostgreSQL DSN: expected keyword=value at character {at + 1};"
                " give a postgresql:// URI or libpq key=value pairs"
            )
        at = keyword.end()
        value, at = _value(dsn, at, keyword.group(1))
        pairs.append((keyword.group(1).lower(), value))
    if not pairs:
        raise DsnInvalid("an empty DSN: give a postgresql:// URI or libpq key=value pairs")
    return pairs


def _value(dsn: str, at: int, keyword: str) -> tuple[str, int]:
    chars: list[str] = []
    quoted = at < len(dsn) and dsn[at] == "'"
    at += 1 if quoted else 0
    while at < len(dsn):
        char = dsn[at]
        if char == "\\" and at + 1 < len(dsn):
            chars.append(dsn[at + 1])
            at += 2
            continue
        if quoted and char == "'":
            return "".join(chars), at + 1
        if not quoted and char.isspace():
            break
        chars.append(char)
        at += 1
    if quoted:
        raise DsnInvalid(f"the value of {keyword} in the DSN has no closing quote")
    return "".join(chars), at


def to_asyncpg(dsn: str) -> str:
    """The DSN asyncpg accepts: a URI as given; key=value pairs as the same URI
    (every keyword a query parameter); anything else refused, ``DsnInvalid``."""
    if is_uri(dsn):
        return dsn.strip()
    pairs = parse_key_value(dsn)
    for key, _ in pairs:
        if key not in _ASYNCPG_KEYS:
            raise DsnInvalid(
                f"the DSN keyword {key!r} is not supported (asyncpg takes "
                f"{', '.join(sorted(_ASYNCPG_KEYS))})"
            )
    return "postgresql://?" + urlencode(pairs, quote_via=quote, safe="/")
