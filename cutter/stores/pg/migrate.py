"""Versioned schema migrations: ``migrations/NNNN_name.sql`` applied in order.

Each applied version is recorded in ``schema_version``. Migrating takes a
session advisory lock first, so two processes migrating at once apply each
version exactly once; running it again applies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from cutter.core.errors import CutterError, ErrorCode, one_line
from cutter.stores.migration_files import read_migrations
from cutter.stores.pg.connect import connect

MIGRATION_LOCK = 0x1C_C0_77E5  # pg_advisory_lock key: "iu-cutter migrate"


class MigrationRefused(CutterError):
    """A migration cannot apply to the rows the database holds (two open runs of one
    document for 0002's index, say); it changed nothing."""

    code = ErrorCode.MIGRATION_REFUSED


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    return [Migration(m.version, m.name, sql) for m, sql in read_migrations("cutter.stores.pg")]


async def migrate(dsn: str) -> list[int]:
    """Apply every migration not yet applied; return the versions this call applied."""
    applied: list[int] = []
    conn = await connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_version")}
            for migration in migrations():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    try:
                        await conn.execute(migration.sql)
                    except asyncpg.IntegrityConstraintViolationError as exc:
                        detail = f" ({exc.detail})" if exc.detail else ""
                        raise MigrationRefused(
                            f"migration {migration.version:04d}_{migration.name}:"
                            f" {one_line(str(exc))}{detail}; nothing was changed"
                        ) from None
                    await conn.execute(
                        "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                applied.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await conn.close()
    return applied


async def schema_version(dsn: str) -> int:
    conn = await connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
    finally:
        await conn.close()
