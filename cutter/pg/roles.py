"""The writer and reader roles: the writer holds exactly what a cut needs.

Role names are checked against a strict pattern before they are quoted into
DDL (identifiers cannot be bind parameters); nothing else is ever built into SQL.
"""

from __future__ import annotations

import re

from cutter.errors import InvalidIdentifier
from cutter.pg.connect import connect

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# table -> privileges of the writer. Target tables match cutter.records.REQUIRED_GRANTS.
WRITER_GRANTS: dict[str, tuple[str, ...]] = {
    "documents": ("SELECT",),
    "source_versions": ("SELECT", "UPDATE"),
    "ius": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "ledger": ("SELECT", "INSERT"),
    "backups": ("SELECT", "INSERT"),
    "kb_docs": ("SELECT", "INSERT", "UPDATE"),
    "runs": ("SELECT", "INSERT", "UPDATE"),
    "consumed_approvals": ("SELECT", "INSERT"),
    "kill_switch": ("SELECT", "UPDATE"),
    "schema_version": ("SELECT",),
    # Approvals a reviewer inserted as their own login: the writer only reads them.
    "db_approvals": ("SELECT",),
}

# The group whose members may insert approvals into ``db_approvals`` (cutter approve
# --dsn): every column but ``principal`` and ``issued_at``, which the database stamps.
REVIEWER = "cutter_reviewer"
REVIEWER_INSERT_COLUMNS = (
    "approval_id",
    "run_id",
    "gate",
    "request_digest",
    "nonce",
    "decision",
    "reason",
    "review_decision_id",
)


def check_role(name: str) -> str:
    if not _ROLE.fullmatch(name):
        raise InvalidIdentifier("role", f"{name[:40]!r} is not a plain lowercase identifier")
    return name


async def create_roles(
    dsn: str, *, writer: str = "cutter_writer", reader: str = "cutter_reader", login: bool = False
) -> None:
    """Create (or re-grant) both roles and the NOLOGIN reviewer group
    (``cutter_reviewer``); running it again changes nothing. A reviewer is a login
    role made a member of that group (``GRANT cutter_reviewer TO ann``)."""
    writer, reader = check_role(writer), check_role(reader)
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            # Roles are cluster-wide; serialise concurrent callers.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('iu-cutter roles'))")
            for role in (writer, reader, REVIEWER):
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
                if not exists:
                    can = "LOGIN" if login and role != REVIEWER else "NOLOGIN"
                    await conn.execute(f'CREATE ROLE "{role}" {can}')
                await conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
                await conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            for table, privileges in WRITER_GRANTS.items():
                await conn.execute(f'GRANT {", ".join(privileges)} ON "{table}" TO "{writer}"')
                await conn.execute(f'GRANT SELECT ON "{table}" TO "{reader}"')
            columns = ", ".join(REVIEWER_INSERT_COLUMNS)
            await conn.execute(f'GRANT SELECT, INSERT ({columns}) ON db_approvals TO "{REVIEWER}"')
            await conn.execute(f'GRANT SELECT ON runs TO "{REVIEWER}"')
    finally:
        await conn.close()
