"""``cutter approve --dsn``: a decision inserted into ``db_approvals`` as the
reviewer's own database login, no daemon in between (issue 11, part 5).

The run's open request is read from ``runs`` and the decision is refused before
anything is written exactly as ``cutter approve`` refuses it (``approval_for``). The
database stamps the row's ``principal`` (``session_user``) and ``issued_at``; a
declared ``--approver`` other than that login is ``E_PRINCIPAL_MISMATCH``, and a
login outside the ``cutter_reviewer`` group gets ``E_NOT_PERMITTED``. Nothing is
resumed here: whoever runs the daemon or runner resumes the run with the printed
``db-approvals/…`` id (``cutter resume RUN --approval ID``), so a reviewer's login
needs no right beyond reading ``runs`` and inserting into ``db_approvals``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from cutter.cli.approve import ApprovalInput, approval_for
from cutter.core.codec import decode_sidecar
from cutter.core.db_approvals import kb_id_of
from cutter.core.errors import AccessDenied, PrincipalMismatch, UnknownRun
from cutter.core.ids import check_run_id
from cutter.core.protocol import RunSummary
from cutter.stores.pg import queries as q
from cutter.stores.pg.connect import connect, domain_errors


@dataclass(frozen=True, slots=True)
class StoredInDatabase:
    approval_kb_id: str
    principal: str  # the login the database stamped
    issued_at: datetime


async def approve_in_database(dsn: str, given: ApprovalInput) -> StoredInDatabase:
    run_id = check_run_id(given.run_id)
    conn = await connect(dsn)
    try:
        with domain_errors("approve"):
            login = str(await conn.fetchval("SELECT session_user"))
            if given.approver is not None and given.approver != login:
                raise PrincipalMismatch(
                    f"--approver {given.approver[:40]!r} is not your database login "
                    f"{login!r}, which the database records as the approver; nothing was stored"
                )
            try:
                data = await conn.fetchval(q.RUN_LOAD, run_id)
            except asyncpg.InsufficientPrivilegeError:
                raise _not_reviewer(login) from None
            if data is None:
                raise UnknownRun(run_id)
            run = RunSummary.of(decode_sidecar(bytes(data), f"runs/{run_id}"))
            command = approval_for(run, replace(given, approver=login))
            approval_id = f"{command.gate.value}-{secrets.token_hex(16)}"
            try:
                row = await conn.fetchrow(
                    q.DB_APPROVAL_INSERT,
                    approval_id,
                    command.run_id,
                    command.gate.value,
                    command.request_digest,
                    command.nonce,
                    command.decision.value,
                    command.reason,
                    command.review_decision_id,
                )
            except asyncpg.InsufficientPrivilegeError:
                raise _not_reviewer(login) from None
    finally:
        await conn.close()
    assert row is not None  # INSERT … RETURNING returns its row
    return StoredInDatabase(kb_id_of(approval_id), row["principal"], row["issued_at"])


def _not_reviewer(login: str) -> AccessDenied:
    return AccessDenied(
        f"database login {login!r} may not approve: it is not a member of cutter_reviewer"
    )
