"""What the gate trusts is not writable by the role that writes IUs (issue 11, part 4),
on a real PostgreSQL with two login roles: ``cutter_writer`` (the daemon's ``--dsn``)
and ``cutter_control`` (its ``--control-dsn``).

First the privileges: the writer's login is refused the kill switch, the consumption
records, the policy and the approvals the daemon attests — also after ``SET ROLE`` —
and the control login is not. Then the forgery matrix: a LIVE run paused at SG_1 (and
one at SG_2) under a policy that needs two approvers; the writer's login tries every
write it can make to ``runs`` and ``kb_docs`` (whatever it is refused is skipped), the
daemon's stores are reopened (a restart) and the run resumed: not one IU row is
written (enacted, at SG_2), and the run stops STOP_GATE_NOT_PASSED or stays at the
gate. With the real approvals, the same run writes its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import msgspec
import pytest
from click.testing import CliRunner

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.cli.main import main
from cutter.core import codec
from cutter.core.approvals import GatePolicy
from cutter.core.codec import encode_kb_doc, encode_sidecar
from cutter.core.errors import CutterError, StopCode
from cutter.core.kbdocs import (
    POLICY_CURRENT,
    Approval,
    Decision,
    KBDoc,
    PolicyVersion,
    SovereignRequest,
    policy_change_id,
)
from cutter.core.mode import Mode
from cutter.core.policy import parse_policy
from cutter.core.route import Gate
from cutter.core.sidecar import ApprovalUse, Sidecar, replace_gate
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.pg.logins import LoginLacksRole, check_logins
from cutter.walk.policy_book import current, default_policy, replace
from cutter.walk.runner import Runner, RunnerConfig, utc_now
from tests._harness import OPERATOR, REVIEWER, REVIEWER_2
from tests.pg._walk import DOC_ID, N_IUS, admin_execute, admin_fetch, publish_source, write_approval
from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[2]

POLICY = f"""
admins = ["{OPERATOR}"]
starters = ["{OPERATOR}"]
[sg_1]
approvers = ["{REVIEWER}", "{REVIEWER_2}"]
required_approvals = 2
[sg_2]
approvers = ["{REVIEWER}", "{REVIEWER_2}"]
required_approvals = 2
"""
LAX = 'admins = ["mallory"]\n[sg_1]\nrequired_approvals = 1\n[sg_2]\nrequired_approvals = 1\n'


@pytest.fixture(autouse=True)
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)


# -- the writer's own connection --------------------------------------------------------


@contextlib.asynccontextmanager
async def login(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def put_doc(conn: asyncpg.Connection, kb_id: str, doc: KBDoc) -> None:
    await conn.execute(
        "INSERT INTO kb_docs (kb_id, doc) VALUES ($1, $2)"
        " ON CONFLICT (kb_id) DO UPDATE SET doc = EXCLUDED.doc",
        kb_id,
        encode_kb_doc(kb_id, doc),
    )


# == privileges =========================================================================

REFUSED_TO_THE_WRITER = [
    pytest.param("UPDATE kill_switch SET engaged = false", (), id="release-kill-switch"),
    pytest.param(
        "UPDATE kill_switch SET engaged = true, reason = 'again'", (), id="engage-kill-switch"
    ),
    pytest.param(
        "INSERT INTO consumed_approvals (approval_kb_id, run_id) VALUES ($1, 'run-a')",
        ("approvals/run-a/SG_1-x",),
        id="insert-consumption",
    ),
    pytest.param(
        "INSERT INTO kb_docs (kb_id, doc) VALUES ($1, '\\x00')", ("policy/current",), id="policy"
    ),
    pytest.param(
        "INSERT INTO kb_docs (kb_id, doc) VALUES ($1, '\\x00')",
        ("policy/changes/000002-0123456789abcdef",),
        id="policy-change",
    ),
    pytest.param(
        "INSERT INTO kb_docs (kb_id, doc) VALUES ($1, '\\x00')",
        ("approvals/run-a/SG_1-0123456789abcdef01234567",),
        id="daemon-approval",
    ),
    pytest.param(
        "UPDATE kb_docs SET kb_id = $1 WHERE kb_id = 'runs/run-a/note'",
        ("approvals/run-a/SG_1-renamed",),
        id="rename-into-approvals",
    ),
    pytest.param(
        "UPDATE kb_docs SET doc = '\\x01' WHERE kb_id = $1",
        ("policy/changes/000001-seed",),
        id="rewrite-policy",
    ),
    pytest.param(
        "UPDATE kb_docs SET kb_id = 'runs/run-a/stolen' WHERE kb_id = $1",
        ("approvals/run-a/SG_1-real",),
        id="rename-out-of-approvals",
    ),
    pytest.param(
        "DELETE FROM kb_docs WHERE kb_id = $1", ("policy/changes/000001-seed",), id="delete-policy"
    ),
]
# Nobody deletes a policy record or an approval: the control role has no DELETE either.
WRITTEN_BY_THE_CONTROL = [p for p in REFUSED_TO_THE_WRITER if p.id != "delete-policy"]


async def seed_controlled_rows(pg_db: PgDatabase) -> None:
    await admin_execute(
        pg_db.admin_dsn,
        "INSERT INTO kb_docs (kb_id, doc) VALUES ('runs/run-a/note', '\\x00'),"
        " ('policy/changes/000001-seed', '\\x00'), ('approvals/run-a/SG_1-real', '\\x00')",
        "UPDATE kill_switch SET engaged = true, reason = 'seeded'",
    )


async def snapshot(pg_db: PgDatabase) -> list[list[object]]:
    return [
        [tuple(r) for r in await admin_fetch(pg_db.admin_dsn, query)]
        for query in (
            "SELECT kb_id, doc FROM kb_docs ORDER BY kb_id",
            "SELECT * FROM consumed_approvals ORDER BY approval_kb_id",
            "SELECT engaged, reason FROM kill_switch",
        )
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("statement", "args"), REFUSED_TO_THE_WRITER)
@pytest.mark.parametrize("set_role", [None, "cutter_writer"], ids=["plain", "set-role"])
async def test_the_writer_login_cannot_write_what_the_gate_trusts(
    pg_db: PgDatabase, statement: str, args: tuple[str, ...], set_role: str | None
) -> None:
    await seed_controlled_rows(pg_db)
    before = await snapshot(pg_db)
    async with login(pg_db.writer_dsn) as conn:
        if set_role:
            await conn.execute(f"SET ROLE {set_role}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement, *args)
    assert await snapshot(pg_db) == before


@pytest.mark.anyio
@pytest.mark.parametrize(("statement", "args"), WRITTEN_BY_THE_CONTROL)
async def test_the_control_login_can(
    pg_db: PgDatabase, statement: str, args: tuple[str, ...]
) -> None:
    await seed_controlled_rows(pg_db)
    before = await snapshot(pg_db)
    async with login(pg_db.control_dsn) as conn:
        await conn.execute(statement, *args)
    assert await snapshot(pg_db) != before


@pytest.mark.anyio
async def test_set_role_and_session_authorization_do_not_get_around_it(pg_db: PgDatabase) -> None:
    """A login in cutter_writer cannot become cutter_control; a login in cutter_control
    that SET ROLEs to cutter_writer is still judged by its login (session_user)."""
    async with login(pg_db.writer_dsn) as conn:
        for become in ("SET ROLE cutter_control", "SET SESSION AUTHORIZATION cutter_control"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(become)
    gatekeeper = f"gatekeeper_{secrets.token_hex(4)}"
    await admin_execute(
        pg_db.admin_dsn,
        f"CREATE ROLE {gatekeeper} LOGIN",
        f"GRANT cutter_control, cutter_writer TO {gatekeeper}",
    )
    try:
        member_dsn = pg_db.writer_dsn.replace("cutter_writer@", f"{gatekeeper}@", 1)
        async with login(member_dsn) as conn:
            # Acting as the writer, the login (session_user) is still the control's member.
            await conn.execute("SET ROLE cutter_writer")
            await conn.execute(
                "INSERT INTO kb_docs (kb_id, doc) VALUES ('policy/current', '\\x00')"
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # a table privilege
                await conn.execute("UPDATE kill_switch SET engaged = false")
    finally:
        await admin_execute(pg_db.admin_dsn, f"DROP ROLE {gatekeeper}")


# == the daemon's logins ================================================================


@pytest.mark.anyio
async def test_the_logins_are_checked_up_front(pg_db: PgDatabase) -> None:
    with pytest.raises(LoginLacksRole, match="cutter_control") as caught:
        await check_logins(pg_db.writer_dsn, None)
    assert caught.value.code == "E_ROLE_MISSING"
    assert "--control-dsn" in caught.value.message
    with pytest.raises(LoginLacksRole, match="cutter_control"):
        await check_logins(pg_db.writer_dsn, pg_db.writer_dsn)
    with pytest.raises(LoginLacksRole, match="cutter_writer"):
        await check_logins(pg_db.control_dsn, pg_db.control_dsn)
    two = await check_logins(pg_db.writer_dsn, pg_db.control_dsn)
    assert (two.writer_login, two.control_login, two.shared) == (
        "cutter_writer",
        "cutter_control",
        False,
    )
    assert (await check_logins(pg_db.admin_dsn, None)).shared  # the superuser holds both


def test_the_daemon_with_a_writer_only_dsn_refuses_to_start(
    pg_db: PgDatabase, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    for extra in ([], ["--control-dsn", pg_db.writer_dsn]):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cutter",
                "daemon",
                "--state-dir",
                str(tmp_path / "s"),
                "--dsn",
                pg_db.writer_dsn,
                *extra,
                "--log",
                str(tmp_path / "log.jsonl"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=REPO,
        )
        assert done.returncode == 1, done
        assert "E_ROLE_MISSING" in done.stderr
        assert "cutter_control" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "s" / "daemon.sock").exists()


# == the forgery matrix =================================================================


@contextlib.asynccontextmanager
async def daemon(
    pg_db: PgDatabase, disc: InMemoryDiscoverer
) -> AsyncIterator[tuple[RunnerConfig, Runner]]:
    """The daemon's stores and runner, on its two logins (one start of it)."""
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        yield config, runner


async def iu_states(pg_db: PgDatabase) -> list[str]:
    rows = await admin_fetch(pg_db.admin_dsn, "SELECT state FROM ius WHERE doc_id = $1", DOC_ID)
    return sorted(r["state"] for r in rows)


async def pause_at(config: RunnerConfig, runner: Runner, gate: Gate) -> Sidecar:
    """A LIVE run waiting at ``gate`` under a policy that needs two approvers."""
    fallback = default_policy(GatePolicy(), OPERATOR)
    policy = parse_policy(POLICY, "toml")
    await replace(config.kb, await current(config.kb, fallback), policy, by=OPERATOR, at=utc_now())
    sc = await runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
    assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION, sc.stop
    if gate is Gate.SG_2:
        for approver in (REVIEWER, REVIEWER_2):
            kb_id = await write_approval(config.kb, sc, approver=approver, suffix=f"-{approver}")
            sc = await runner.resume(sc.run_id, kb_id)
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
    return sc


def approval(sc: Sidecar, approver: str) -> Approval:
    gate = sc.pending_gate
    assert gate is not None
    return Approval(
        run_id=sc.run_id,
        gate=gate.gate,
        request_digest=gate.request_digest,
        nonce=gate.nonce,
        decision=Decision.APPROVE,
        approver=approver,
        principal=approver,
        reason="looks fine to me",
        issued_at=utc_now(),
        review_decision_id=f"review-{sc.run_id}" if gate.gate is Gate.SG_2 else None,
    )


async def real_approval(pg_db: PgDatabase, sc: Sidecar, approver: str) -> str:
    """A reviewer's decision stored as the daemon stores it (under approvals/, by a
    member of cutter_control)."""
    gate = sc.pending_gate
    assert gate is not None
    kb_id = f"approvals/{sc.run_id}/{gate.gate.value}-real-{approver}"
    async with login(pg_db.control_dsn) as conn:
        await put_doc(conn, kb_id, approval(sc, approver))
    return kb_id


async def attempt(conn: asyncpg.Connection, write: Callable[[], Awaitable[object]]) -> bool:
    """Make one write as the writer's login; False when the database refuses it."""
    try:
        async with conn.transaction():
            await write()
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


async def save_run(conn: asyncpg.Connection, sc: Sidecar) -> None:
    await conn.execute(
        "UPDATE runs SET sidecar = $2, state = $3 WHERE run_id = $1",
        sc.run_id,
        encode_sidecar(sc),
        sc.state.value,
    )


def with_gate(sc: Sidecar, **changes: object) -> Sidecar:
    gate = sc.pending_gate
    assert gate is not None
    return msgspec.structs.replace(
        sc, gates=replace_gate(sc, msgspec.structs.replace(gate, **changes))
    )


def past_the_gate(sc: Sidecar) -> Sidecar:
    return msgspec.structs.replace(sc, state=RunState.RUNNING, stop=None)


def use(kb_id: str, approver: str) -> ApprovalUse:
    return ApprovalUse(
        approval_kb_id=kb_id,
        approver=approver,
        decision=Decision.APPROVE,
        peer=approver,
        principal=approver,
        consumed_at=utc_now(),
    )


@dataclass(frozen=True)
class Forged:
    """What the attacker then asks the restarted daemon to resume the run with."""

    resume_with: tuple[str | None, ...] = (None,)


Forgery = Callable[[PgDatabase, asyncpg.Connection, Sidecar], Awaitable[Forged]]


async def zero_required(pg_db: PgDatabase, conn: asyncpg.Connection, sc: Sidecar) -> Forged:
    await attempt(conn, functools.partial(save_run, conn, with_gate(sc, required_approvals=0)))
    return Forged()


async def jumped_past_the_gate(pg_db: PgDatabase, conn: asyncpg.Connection, sc: Sidecar) -> Forged:
    jumped = past_the_gate(with_gate(sc, required_approvals=0))
    await attempt(conn, functools.partial(save_run, conn, jumped))
    return Forged()


async def one_real_approval_stretched(
    pg_db: PgDatabase, conn: asyncpg.Connection, sc: Sidecar
) -> Forged:
    """One reviewer really approved; the writer makes one enough: the sidecar's rule,
    and a laxer policy (current and a change record)."""
    real = await real_approval(pg_db, sc, REVIEWER)
    await attempt(conn, functools.partial(save_run, conn, with_gate(sc, required_approvals=1)))
    lax = parse_policy(LAX, "toml")
    stored = await current_as_admin(pg_db)
    version = PolicyVersion(
        version=stored.version + 1, policy=lax, set_by="mallory", set_at=utc_now()
    )
    for kb_id in (policy_change_id(version), POLICY_CURRENT):
        await attempt(conn, functools.partial(put_doc, conn, kb_id, version))
    return Forged((real,))


async def current_as_admin(pg_db: PgDatabase) -> PolicyVersion:
    row = await admin_fetch(
        pg_db.admin_dsn, "SELECT doc FROM kb_docs WHERE kb_id = $1", POLICY_CURRENT
    )
    doc = codec.decode_kb_doc(bytes(row[0]["doc"]), POLICY_CURRENT)
    assert isinstance(doc, PolicyVersion)
    return doc


# Every prefix a forger might choose: the daemon's own (refused to the writer), the run's
# own records, the KB at large, and look-alikes of the daemon's.
PREFIXES = {
    "approvals": "approvals/{run}/{gate}-forged",
    "runs": "runs/{run}/forged",
    "elsewhere": "forged",
    "look-alike": "approvals-{run}",
}


def forged_ids(prefix: str, sc: Sidecar) -> tuple[str, str]:
    gate = sc.pending_gate
    assert gate is not None
    base = prefix.format(run=sc.run_id, gate=gate.gate.value)
    return f"{base}/{REVIEWER}", f"{base}/{REVIEWER_2}"


async def put_forged(conn: asyncpg.Connection, sc: Sidecar, prefix: str) -> tuple[str, str]:
    """Two hand-written approvals, one per approver the policy names."""
    ids = forged_ids(prefix, sc)
    for kb_id, approver in zip(ids, (REVIEWER, REVIEWER_2), strict=True):
        await attempt(conn, functools.partial(put_doc, conn, kb_id, approval(sc, approver)))
    return ids


def forged_and_resumed(prefix: str) -> Forgery:
    """Hand-written approvals, handed to the daemon to consume."""

    async def forge(pg_db: PgDatabase, conn: asyncpg.Connection, sc: Sidecar) -> Forged:
        return Forged(await put_forged(conn, sc, prefix))

    return forge


def forged_and_recorded(prefix: str) -> Forgery:
    """Hand-written approvals, recorded as consumed by the run, the run moved past the
    gate: the gatekeeper never sees them."""

    async def forge(pg_db: PgDatabase, conn: asyncpg.Connection, sc: Sidecar) -> Forged:
        ids = await put_forged(conn, sc, prefix)
        for kb_id in ids:
            await attempt(
                conn,
                functools.partial(
                    conn.execute,
                    "INSERT INTO consumed_approvals (approval_kb_id, run_id) VALUES ($1, $2)",
                    kb_id,
                    sc.run_id,
                ),
            )
        uses = tuple(use(k, a) for k, a in zip(ids, (REVIEWER, REVIEWER_2), strict=True))
        await attempt(
            conn, functools.partial(save_run, conn, past_the_gate(with_gate(sc, uses=uses)))
        )
        return Forged()

    return forge


async def request_rewritten(pg_db: PgDatabase, conn: asyncpg.Connection, sc: Sidecar) -> Forged:
    """The request doc says something else (one IU more) than the reviewers approved."""
    gate = sc.pending_gate
    assert gate is not None
    row = await admin_fetch(
        pg_db.admin_dsn, "SELECT doc FROM kb_docs WHERE kb_id = $1", gate.request_kb_id
    )
    request = codec.decode_kb_doc(bytes(row[0]["doc"]), gate.request_kb_id)
    assert isinstance(request, SovereignRequest)
    subject = msgspec.structs.replace(request.subject, iu_count=request.subject.iu_count + 1)
    rewritten = msgspec.structs.replace(
        request, subject=subject, request_digest=subject.request_digest
    )
    await attempt(conn, functools.partial(put_doc, conn, gate.request_kb_id, rewritten))
    real = [await real_approval(pg_db, sc, a) for a in (REVIEWER, REVIEWER_2)]
    return Forged(tuple(real))


FORGERIES: list[object] = [
    pytest.param(zero_required, id="required-approvals-0"),
    pytest.param(jumped_past_the_gate, id="state-past-the-gate"),
    pytest.param(one_real_approval_stretched, id="one-real-approval-and-a-lax-policy"),
    *(pytest.param(forged_and_resumed(p), id=f"resumed-with-{n}") for n, p in PREFIXES.items()),
    *(pytest.param(forged_and_recorded(p), id=f"recorded-{n}") for n, p in PREFIXES.items()),
    pytest.param(request_rewritten, id="request-doc-rewritten"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("gate", [Gate.SG_1, Gate.SG_2], ids=["SG_1", "SG_2"])
@pytest.mark.parametrize("forgery", FORGERIES)
async def test_no_write_the_writer_login_can_make_lets_a_live_run_write_a_row(
    pg_db: PgDatabase, gate: Gate, forgery: Forgery
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with daemon(pg_db, disc) as (config, runner):
        sc = await pause_at(config, runner, gate)
    before = await iu_states(pg_db)
    async with login(pg_db.writer_dsn) as conn:  # the daemon is down; its writer login is not
        forged = await forgery(pg_db, conn, sc)
    async with daemon(pg_db, disc) as (config, runner):  # the restart
        with contextlib.suppress(CutterError):
            await runner.recover()
        for kb_id in forged.resume_with:
            with contextlib.suppress(CutterError):
                await runner.resume(sc.run_id, kb_id)
        after = await runner.status(sc.run_id)
    states = await iu_states(pg_db)
    if gate is Gate.SG_1:
        assert states == [], "a forged SG_1 wrote IU rows"
    else:
        assert before == ["staged"] * N_IUS
        assert "active" not in states, "a forged SG_2 enacted IU rows"
    at_the_gate = after.state is (
        RunState.AWAITING_CUT_AUTHORIZATION
        if gate is Gate.SG_1
        else RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    )
    stopped = after.state is RunState.FAILED and after.stop_code == StopCode.GATE_NOT_PASSED.value
    assert at_the_gate or stopped, after.stop


@pytest.mark.anyio
@pytest.mark.parametrize("gate", [Gate.SG_1, Gate.SG_2], ids=["SG_1", "SG_2"])
async def test_with_the_real_approvals_the_same_run_writes_its_rows(
    pg_db: PgDatabase, gate: Gate
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with daemon(pg_db, disc) as (config, runner):
        sc = await pause_at(config, runner, gate)
    real = [await real_approval(pg_db, sc, a) for a in (REVIEWER, REVIEWER_2)]
    async with daemon(pg_db, disc) as (config, runner):
        for kb_id in real:
            sc = await runner.resume(sc.run_id, kb_id)
    if gate is Gate.SG_1:
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
        assert await iu_states(pg_db) == ["staged"] * N_IUS
    else:
        assert sc.state is RunState.CLOSEOUT_REPORTED, sc.stop
        assert await iu_states(pg_db) == ["active"] * N_IUS


@pytest.mark.anyio
async def test_a_function_the_writer_plants_on_the_search_path_does_not_open_the_trigger(
    pg_db: PgDatabase,
) -> None:
    """Before PostgreSQL 15 every login may create objects in ``public``: the writer's
    own ``pg_has_role`` or ``starts_with``, found first on a ``search_path`` it sets,
    would answer for the trigger's. The trigger's functions pin ``search_path``."""
    await admin_execute(pg_db.admin_dsn, "GRANT CREATE ON SCHEMA public TO cutter_writer")
    async with login(pg_db.writer_dsn) as conn:
        for planted in (
            "CREATE FUNCTION public.pg_has_role(name, text, text) RETURNS boolean"
            " LANGUAGE sql AS 'SELECT true'",
            "CREATE FUNCTION public.starts_with(text, text) RETURNS boolean"
            " LANGUAGE sql AS 'SELECT false'",
            "CREATE FUNCTION public.now() RETURNS timestamptz"
            " LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$",
        ):
            await conn.execute(planted)
        await conn.execute("SET search_path = public, pg_catalog")
        for kb_id in ("policy/current", "approvals/run-a/SG_1-planted"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("INSERT INTO kb_docs (kb_id, doc) VALUES ($1, '\\x00')", kb_id)
    assert await admin_fetch(pg_db.admin_dsn, "SELECT kb_id FROM kb_docs") == []


@pytest.mark.anyio
async def test_a_reviewers_planted_now_does_not_date_its_database_approval(
    pg_db: PgDatabase,
) -> None:
    """Migration 0003's stamp calls now(); 0004 pins its search_path too."""
    reviewer = f"reviewer_{secrets.token_hex(4)}"
    await admin_execute(
        pg_db.admin_dsn,
        f"CREATE ROLE {reviewer} LOGIN",
        f"GRANT cutter_reviewer TO {reviewer}",
        f"GRANT CREATE ON SCHEMA public TO {reviewer}",
    )
    try:
        async with login(pg_db.writer_dsn.replace("cutter_writer@", f"{reviewer}@", 1)) as conn:
            await conn.execute(
                "CREATE FUNCTION public.now() RETURNS timestamptz"
                " LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$"
            )
            await conn.execute("SET search_path = public, pg_catalog")
            await conn.execute(
                "INSERT INTO db_approvals (approval_id, run_id, gate, request_digest, nonce,"
                " decision, reason) VALUES ('planted', 'run-x', 'SG_1', 'd', 'n', 'approve', 'r')"
            )
        (row,) = await admin_fetch(
            pg_db.admin_dsn,
            "SELECT principal, issued_at > now() - interval '1 hour' AS fresh FROM db_approvals",
        )
        assert (row["principal"], row["fresh"]) == (reviewer, True)
    finally:
        await admin_execute(pg_db.admin_dsn, f"DROP OWNED BY {reviewer}", f"DROP ROLE {reviewer}")


def test_cutter_db_roles_as_a_login_that_may_not_grant_is_refused_typed(
    pg_db: PgDatabase,
) -> None:
    before = asyncio.run(grants(pg_db))
    result = CliRunner().invoke(main, ["db", "roles", "--dsn", pg_db.writer_dsn])
    assert result.exit_code == 1, result.output
    assert "E_NOT_PERMITTED" in result.output
    assert "cutter_writer" in result.output
    assert "Traceback" not in result.output
    assert asyncio.run(grants(pg_db)) == before


def test_control_dsn_without_dsn_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["daemon", "--state-dir", str(tmp_path), "--control-dsn", "postgresql://x@/y"]
    )
    assert result.exit_code == 2
    assert "--control-dsn goes with --dsn" in result.output


async def grants(pg_db: PgDatabase) -> list[tuple[object, ...]]:
    rows = await admin_fetch(
        pg_db.admin_dsn,
        "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants"
        " WHERE grantee LIKE 'cutter_%' ORDER BY 1, 2, 3",
    )
    return [tuple(r) for r in rows]
