"""Versioned migrations of the embedded database: ``migrations/NNNN_name.sql`` in order.

Each version is applied in one ``BEGIN IMMEDIATE`` transaction together with its row
in ``schema_version``: SQLite's write lock makes two processes opening one new
database at once apply each version exactly once, and a crash mid-migration leaves
the version unapplied and the schema as it was. A database whose versions run past
the ones this cutter knows (written by a newer one) is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from cutter.core.errors import StateDirUnusable
from cutter.stores.migration_files import read_migrations


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _statements(sql: str) -> tuple[str, ...]:
    """``sql`` split into whole statements (a trigger's body keeps its ``;``)."""
    found: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if statement.strip(";").strip() and not _only_comments(statement):
                found.append(statement)
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise RuntimeError(f"an incomplete statement ends a migration: {pending[:60]!r}")
    return tuple(found)


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


def migrations() -> list[Migration]:
    return [
        Migration(m.version, m.name, _statements(sql))
        for m, sql in read_migrations("cutter.stores.sqlite")
    ]


def _newest(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def _location(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration not yet applied; return the versions this call applied.
    A database that is up to date is only read (so a read-only one still opens)."""
    known = migrations()
    newest = _newest(conn)
    if newest > len(known):
        raise StateDirUnusable(
            _location(conn),
            f"its database is at schema version {newest}, newer than this cutter's "
            f"{len(known)}: run the cutter that wrote it",
        )
    applied: list[int] = []
    for migration in known[newest:]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                ") STRICT"
            )
            if _newest(conn) < migration.version:  # another process may have applied it
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )
                applied.append(migration.version)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
    return applied
