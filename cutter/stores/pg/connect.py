"""Connections: a DSN that does not answer fails within seconds with a clear error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg

from cutter.core.errors import CutterError, ErrorCode, StopGrantMissing
from cutter.core.secrets import redact_dsn, scrub, to_asyncpg

CONNECT_TIMEOUT = 5.0


class StoreUnavailable(CutterError):
    code = ErrorCode.STORE_UNAVAILABLE


_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def connect(dsn: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> asyncpg.Connection:
    """A connection to ``dsn`` (a libpq URI or key=value pairs; ``DsnInvalid`` else)."""
    target = to_asyncpg(dsn)
    try:
        return await asyncpg.connect(target, timeout=connect_timeout)
    except _CONNECT_ERRORS as exc:
        raise StoreUnavailable(
            f"cannot connect to PostgreSQL at {redacted(dsn)}: {_describe(exc)}"
        ) from exc


async def create_pool(
    dsn: str,
    *,
    role: str | None = None,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> asyncpg.Pool:
    """A pool whose sessions act as ``role`` (``SET ROLE`` at connect) when given.

    Every connection it opens, lazily too, fails as ``StoreUnavailable`` naming
    the target (password redacted)."""
    target = redacted(dsn)
    given = to_asyncpg(dsn)

    async def open_connection(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(*args, **kwargs)
        except _CONNECT_ERRORS as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {target}: {_describe(exc)}"
            ) from exc

    settings = {"role": role} if role else None
    pool = await asyncpg.create_pool(
        given,
        min_size=min_size,
        max_size=max_size,
        timeout=connect_timeout,
        server_settings=settings,
        connect=open_connection,
    )
    assert pool is not None
    return pool


def redacted(dsn: str) -> str:
    """The DSN without its password, fit for an error message (``cutter.core.secrets``)."""
    return redact_dsn(dsn)


def _describe(exc: BaseException) -> str:
    text = scrub(str(exc)) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class RecordRefused(CutterError):
    """The database refused a value (e.g. NUL in text): nothing was written."""

    code = ErrorCode.RECORD_REFUSED


@contextlib.contextmanager
def domain_errors(what: str) -> Iterator[None]:
    """Map asyncpg's errors to domain errors at the adapter boundary."""
    try:
        yield
    except asyncpg.InsufficientPrivilegeError as exc:
        raise StopGrantMissing(f"{what}: the writer lacks a privilege ({exc})") from exc
    except asyncpg.DataError as exc:
        raise RecordRefused(f"{what}: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise RecordRefused(f"{what}: text that is not valid Unicode ({exc.reason})") from exc
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
        raise StoreUnavailable(f"{what}: {_describe(exc)}") from exc
