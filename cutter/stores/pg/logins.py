"""Which roles the daemon's logins hold, checked once at start, not mid-run.

The daemon on PostgreSQL takes two logins: ``--dsn``, a member of the IU writer role
(``cutter_writer``), and ``--control-dsn``, a member of ``cutter_control`` (the
gatekeeper's role: consumption records, the policy, the approvals the daemon
attests, the kill switch). With one DSN that login must hold both roles — the
weaker setup, since then whoever holds the IU writer's password can pass the gate
too; ``check_logins`` says so (``shared``), and the daemon logs it. A login that
lacks a role it needs is ``LoginLacksRole`` naming the role, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from cutter.core.errors import CutterError, ErrorCode
from cutter.stores.pg.connect import connect, redacted
from cutter.stores.pg.roles import CONTROL, check_role


class LoginLacksRole(CutterError):
    """A daemon login is not a member of a role it needs (or the role does not exist)."""

    code = ErrorCode.ROLE_MISSING


@dataclass(frozen=True, slots=True)
class Logins:
    writer_login: str
    control_login: str

    @property
    def shared(self) -> bool:
        """One login holds both roles: the weaker setup."""
        return self.writer_login == self.control_login


async def _login_with(dsn: str, role: str, what: str) -> str:
    conn = await connect(dsn)
    try:
        login = str(await conn.fetchval("SELECT session_user"))
        try:
            member = await conn.fetchval("SELECT pg_has_role(session_user, $1, 'MEMBER')", role)
        except asyncpg.UndefinedObjectError:
            raise LoginLacksRole(
                f"role {role} does not exist on {redacted(dsn)}: run `cutter db roles`"
            ) from None
    finally:
        await conn.close()
    if not member:
        raise LoginLacksRole(f"{what} login {login!r} is not a member of {role}")
    return login


async def check_logins(
    dsn: str, control_dsn: str | None, *, writer: str = "cutter_writer"
) -> Logins:
    """The logins of ``dsn`` (must be in ``writer``) and of ``control_dsn`` (or ``dsn``
    when None; must be in ``cutter_control``)."""
    writer_login = await _login_with(dsn, check_role(writer), "the --dsn")
    if control_dsn is None:
        try:
            control_login = await _login_with(dsn, CONTROL, "the --dsn")
        except LoginLacksRole as exc:
            raise LoginLacksRole(
                f"{exc.message}, and no --control-dsn was given: the daemon consumes "
                f"approvals, writes the policy and sets the kill switch as {CONTROL}; "
                f"give --control-dsn a login that is a member of {CONTROL}"
            ) from None
    else:
        control_login = await _login_with(control_dsn, CONTROL, "the --control-dsn")
    return Logins(writer_login=writer_login, control_login=control_login)
