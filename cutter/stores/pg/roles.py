"""The roles: the writer holds exactly what a cut needs, the control role what the
gate trusts, the reader reads.

``cutter_writer`` (the daemon's IU writer, ``--dsn``) writes the target tables, runs
and KB docs — but not the kill switch, not the consumption records, and (migration
0004's trigger on ``kb_docs``) not the policy or the approvals the daemon attests.
Those are ``cutter_control``'s (the gatekeeper's, ``--control-dsn``): a login that is
a member of it. ``cutter_reviewer``'s members insert approvals as themselves.

Role names are checked against a strict pattern before they are quoted into
DDL (identifiers cannot be bind parameters); nothing else is ever built into SQL.
"""

from __future__ import annotations

import re

import asyncpg

from cutter.core.errors import AccessDenied, InvalidIdentifier
from cutter.stores.pg.connect import connect

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# table -> privileges of the writer. Target tables match cutter.core.records.REQUIRED_GRANTS.
WRITER_GRANTS: dict[str, tuple[str, ...]] = {
    "documents": ("SELECT",),
    "source_versions": ("SELECT", "UPDATE"),
    "ius": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "ledger": ("SELECT", "INSERT"),
    "backups": ("SELECT", "INSERT"),
    "kb_docs": ("SELECT", "INSERT", "UPDATE"),
    "runs": ("SELECT", "INSERT", "UPDATE"),
    # The notification outbox: a save inserts its notices; the deliverer fans them out
    # and records attempts (migration 0007). Not a target table: a cut writes none.
    "outbox": ("SELECT", "INSERT", "UPDATE"),
    "deliveries": ("SELECT", "INSERT", "UPDATE"),
    # Read only: consuming an approval and the kill switch are the control role's.
    "consumed_approvals": ("SELECT",),
    "kill_switch": ("SELECT",),
    "schema_version": ("SELECT",),
    # Approvals a reviewer inserted as their own login: the writer only reads them.
    "db_approvals": ("SELECT",),
}

# The gatekeeper's group: what the gate trusts. It consumes an approval and saves the
# advanced run in one transaction (so ``runs`` too), writes the policy and the
# approvals the daemon attests (``kb_docs`` under ``policy/`` and ``approvals/``, which
# the trigger of migration 0004 keeps from every login outside this group), and sets
# the kill switch. It writes no target table.
CONTROL = "cutter_control"
CONTROL_GRANTS: dict[str, tuple[str, ...]] = {
    "kb_docs": ("SELECT", "INSERT", "UPDATE"),
    "runs": ("SELECT", "INSERT", "UPDATE"),
    "consumed_approvals": ("SELECT", "INSERT"),
    "outbox": ("SELECT", "INSERT"),  # the notices of a run saved with a consumption
    "kill_switch": ("SELECT", "UPDATE"),
    "db_approvals": ("SELECT",),
    "schema_version": ("SELECT",),
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


# The tables (of ``$1``) the session's login neither owns nor may act as the owner of.
_NOT_OWNED = """
SELECT tablename FROM pg_tables
WHERE schemaname = 'public' AND tablename = ANY($1::text[])
  AND NOT pg_has_role(session_user, tableowner, 'USAGE')
ORDER BY tablename
"""


def check_role(name: str) -> str:
    if not _ROLE.fullmatch(name):
        raise InvalidIdentifier("role", f"{name[:40]!r} is not a plain lowercase identifier")
    return name


async def create_roles(
    dsn: str, *, writer: str = "cutter_writer", reader: str = "cutter_reader", login: bool = False
) -> None:
    """Create (or re-grant exactly) the writer, the reader, the control role
    (``cutter_control``) and the NOLOGIN reviewer group (``cutter_reviewer``); running
    it again changes nothing. ``login`` makes writer, reader and control LOGIN roles;
    otherwise a login is made a member (``GRANT cutter_control TO gatekeeper``), as a
    reviewer is of ``cutter_reviewer``."""
    writer, reader = check_role(writer), check_role(reader)
    conn = await connect(dsn)
    try:
        login_name = str(await conn.fetchval("SELECT session_user"))
        try:
            await _grant_all(conn, writer, reader, login)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise AccessDenied(
                f"database login {login_name!r} may not create or grant the roles ({exc}): "
                "run `cutter db roles` as the schema's owner with CREATEROLE; nothing changed"
            ) from None
    finally:
        await conn.close()


async def _grant_all(conn: asyncpg.Connection, writer: str, reader: str, login: bool) -> None:
    """One transaction: all of it, or (refused) nothing. PostgreSQL only warns when a
    login that does not own a table grants or revokes on it, so ownership is checked
    first: otherwise nothing would change and the roles would be said to hold their
    grants."""
    tables = sorted(set(WRITER_GRANTS) | set(CONTROL_GRANTS))
    foreign = await conn.fetch(_NOT_OWNED, tables)
    if foreign:
        login_name = await conn.fetchval("SELECT session_user")
        raise AccessDenied(
            f"database login {login_name!r} does not own "
            + ", ".join(r["tablename"] for r in foreign)
            + ": run `cutter db roles` as the schema's owner; nothing changed"
        )
    async with conn.transaction():
        # Roles are cluster-wide; serialise concurrent callers.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('iu-cutter roles'))")
        for role in (writer, reader, CONTROL, REVIEWER):
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            if not exists:
                can = "LOGIN" if login and role != REVIEWER else "NOLOGIN"
                await conn.execute(f'CREATE ROLE "{role}" {can}')
            await conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
            await conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        for table, privileges in WRITER_GRANTS.items():
            await conn.execute(f'GRANT {", ".join(privileges)} ON "{table}" TO "{writer}"')
            await conn.execute(f'GRANT SELECT ON "{table}" TO "{reader}"')
        for table, privileges in CONTROL_GRANTS.items():
            await conn.execute(f'GRANT {", ".join(privileges)} ON "{table}" TO "{CONTROL}"')
        columns = ", ".join(REVIEWER_INSERT_COLUMNS)
        await conn.execute(f'GRANT SELECT, INSERT ({columns}) ON db_approvals TO "{REVIEWER}"')
        await conn.execute(f'GRANT SELECT ON runs TO "{REVIEWER}"')
