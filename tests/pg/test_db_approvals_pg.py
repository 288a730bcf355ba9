"""Approvals straight through PostgreSQL (issue 11, part 5): two login roles, ann and
bob, members of ``cutter_reviewer``. The database stamps who inserted an approval
(``session_user``); a client cannot name another, the writer role cannot insert one,
and a gate whose proofs are ``["database"]`` passes with such a row only."""

from __future__ import annotations

import dataclasses

import anyio.to_thread
import asyncpg
import msgspec
import pytest
from click.testing import CliRunner

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.cli.approve import ApprovalInput
from cutter.cli.approve_pg import approve_in_database
from cutter.cli.main import main
from cutter.core.approvals import GatePolicy
from cutter.core.errors import (
    AccessDenied,
    ApprovalSignatureRequired,
    InvalidIdentifier,
    PrincipalMismatch,
)
from cutter.core.kbdocs import Approval
from cutter.core.mode import Mode
from cutter.core.route import Gate
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.pg.records import PgKnowledgeBase
from cutter.walk.policy_book import current, default_policy, replace
from cutter.walk.runner import Runner, utc_now
from tests._harness import OPERATOR
from tests.pg._walk import DOC_ID, N_IUS, admin_execute, admin_fetch, publish_source, write_approval
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

REVIEWERS = ("ann", "bob")

INSERT_NAMING_PRINCIPAL = """
INSERT INTO db_approvals (approval_id, run_id, gate, request_digest, nonce, decision,
                          reason, principal)
VALUES ('forged', 'run-x', 'SG_1', 'd', 'n', 'approve', 'r', 'ann')
"""
INSERT_PLAIN = """
INSERT INTO db_approvals (approval_id, run_id, gate, request_digest, nonce, decision, reason)
VALUES ('plain', 'run-x', 'SG_1', 'd', 'n', 'approve', 'r')
"""


@pytest.fixture(autouse=True)
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)


def login_dsn(db: PgDatabase, login: str) -> str:
    return db.writer_dsn.replace("cutter_writer@", f"{login}@", 1)


async def make_reviewers(db: PgDatabase) -> None:
    """ann and bob: login roles (cluster-wide, so made once) in cutter_reviewer."""
    for login in REVIEWERS:
        await admin_execute(
            db.admin_dsn,
            f"DO $$ BEGIN CREATE ROLE {login} LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            f"GRANT cutter_reviewer TO {login}",
        )


async def as_login(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_reviewer_cannot_name_the_principal_and_the_database_stamps_it(
    pg_db: PgDatabase,
) -> None:
    await make_reviewers(pg_db)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_login(login_dsn(pg_db, "bob"), INSERT_NAMING_PRINCIPAL)
    await as_login(login_dsn(pg_db, "bob"), INSERT_PLAIN)
    # Even the table's owner, writing principal = 'ann', gets its own login stamped.
    await admin_execute(pg_db.admin_dsn, INSERT_NAMING_PRINCIPAL)
    rows = await admin_fetch(
        pg_db.admin_dsn, "SELECT approval_id, principal, session_user AS me FROM db_approvals"
    )
    stamped = {r["approval_id"]: r["principal"] for r in rows}
    assert stamped == {"plain": "bob", "forged": rows[0]["me"]}
    assert "ann" not in stamped.values()
    # A reviewer cannot rewrite a row afterwards either.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_login(login_dsn(pg_db, "ann"), "UPDATE db_approvals SET reason = 'mine'")


async def test_the_writer_role_cannot_insert_or_forge_a_database_approval(
    pg_db: PgDatabase,
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_login(pg_db.writer_dsn, INSERT_PLAIN)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_login(pg_db.writer_dsn, INSERT_NAMING_PRINCIPAL)
    # kb_docs is the writer's: a row it puts under db-approvals/ is never served.
    await as_login(
        pg_db.writer_dsn,
        "INSERT INTO kb_docs (kb_id, doc) VALUES ('db-approvals/plain', '\\x7b7d')",
    )
    async with pg_config(
        pg_db.writer_dsn, InMemoryDiscoverer.seeded(1), control_dsn=pg_db.control_dsn
    ) as config:
        with pytest.raises(KeyError):
            await config.kb.get("db-approvals/plain")
        fake = Approval(
            run_id="run-x",
            gate=Gate.SG_1,
            request_digest="d",
            nonce="n",
            decision=cutter.core.kbdocs.Decision.APPROVE,
            approver="ann",
            principal="ann",
            reason="r",
            issued_at=utc_now(),
        )
        with pytest.raises(InvalidIdentifier):
            await config.kb.put("db-approvals/plain", fake)


async def database_only(kb: PgKnowledgeBase) -> None:
    fallback = default_policy(GatePolicy(), "cutter")
    policy = msgspec.structs.replace(
        fallback, sg_1=msgspec.structs.replace(fallback.sg_1, proofs=("database",))
    )
    await replace(kb, await current(kb, fallback), policy, by="cutter", at=utc_now())


async def test_a_database_only_gate_passes_with_bobs_row_and_refuses_a_kb_approval(
    pg_db: PgDatabase,
) -> None:
    await make_reviewers(pg_db)
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        assert isinstance(config.kb, PgKnowledgeBase)
        await database_only(config.kb)
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION, sc.stop
        # An approval doc the writer put into kb_docs is not a database approval.
        kb_approval = await write_approval(config.kb, sc)
        with pytest.raises(ApprovalSignatureRequired):
            await runner.resume(sc.run_id, kb_approval)
        assert (await config.run_store.load(sc.run_id)).state is sc.state
        given = ApprovalInput(run_id=sc.run_id, gate=Gate.SG_1, approver="bob", reason="read it")
        with pytest.raises(PrincipalMismatch):
            await approve_in_database(
                login_dsn(pg_db, "bob"), dataclasses.replace(given, approver="ann")
            )
        with pytest.raises(AccessDenied):  # the writer is no reviewer
            await approve_in_database(
                pg_db.writer_dsn, dataclasses.replace(given, approver="cutter_writer")
            )
        stored = await approve_in_database(login_dsn(pg_db, "bob"), given)
        assert stored.principal == "bob"
        served = await config.kb.get(stored.approval_kb_id)
        assert isinstance(served, Approval)
        assert (served.approver, served.principal) == ("bob", "bob")
        sc = await runner.resume(sc.run_id, stored.approval_kb_id)
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
        used = sc.gates[0].uses
        assert [(u.approver, u.proof) for u in used] == [("bob", "database")]
    # The gate judged again at leg A's write accepted it: the rows are staged.
    states = await admin_fetch(pg_db.admin_dsn, "SELECT state FROM ius WHERE doc_id = $1", DOC_ID)
    assert [r["state"] for r in states] == ["staged"] * N_IUS


async def test_a_database_approval_does_not_pass_a_gate_that_does_not_list_it(
    pg_db: PgDatabase,
) -> None:
    await make_reviewers(pg_db)
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        given = ApprovalInput(run_id=sc.run_id, gate=Gate.SG_1, approver="ann", reason="ok")
        stored = await approve_in_database(login_dsn(pg_db, "ann"), given)
        assert stored.principal == "ann"
        with pytest.raises(ApprovalSignatureRequired, match="stamped by the database"):
            await runner.resume(sc.run_id, stored.approval_kb_id)
        after = await config.run_store.load(sc.run_id)
    assert after.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert await admin_fetch(pg_db.admin_dsn, "SELECT 1 FROM ius") == []


async def test_cutter_approve_dsn_stores_as_the_login_and_refuses_another_name(
    pg_db: PgDatabase,
) -> None:
    await make_reviewers(pg_db)
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
    base = ["approve", sc.run_id, "--gate", "SG_1", "--reason", "read it"]
    bob = ["--dsn", login_dsn(pg_db, "bob")]
    cli = CliRunner()
    # click runs its own event loop for the command: off this test's loop.
    forged = await anyio.to_thread.run_sync(cli.invoke, main, [*base, "--approver", "ann", *bob])
    assert forged.exit_code == 1, forged.output
    assert "E_PRINCIPAL_MISMATCH" in forged.output
    assert "Traceback" not in forged.output
    assert await admin_fetch(pg_db.admin_dsn, "SELECT 1 FROM db_approvals") == []
    # Without --approver the decision is the login's own.
    done = await anyio.to_thread.run_sync(cli.invoke, main, [*base, *bob])
    assert done.exit_code == 0, done.output
    rows = await admin_fetch(pg_db.admin_dsn, "SELECT approval_id, principal FROM db_approvals")
    assert [r["principal"] for r in rows] == ["bob"]
    assert f"db-approvals/{rows[0]['approval_id']}" in done.output
    assert f"cutter resume {sc.run_id}" in done.output
