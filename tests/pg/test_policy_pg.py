"""The policy on PostgreSQL: KB docs in ``kb_docs``, no schema change, written through
the control role (tests/pg/test_control_role_pg.py: the writer cannot)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cutter.core.approvals import GatePolicy
from cutter.core.kbdocs import POLICY_CURRENT, PolicyVersion, policy_change_id
from cutter.core.policy import parse_policy
from cutter.stores.pg.connect import create_pool
from cutter.stores.pg.records import PgKnowledgeBase
from cutter.walk.policy_book import current, default_policy, replace
from tests.pg._stores import WRITER
from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.subprocess

AT = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.anyio
async def test_the_policy_and_its_changes_are_kb_docs_on_postgresql(pg_db: PgDatabase) -> None:
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    control = await create_pool(pg_db.control_dsn, role="cutter_control", min_size=0)
    try:
        kb = PgKnowledgeBase(pool, control)
        fallback = default_policy(GatePolicy(required_approvals=2), "cutter")
        before = await current(kb, fallback)
        assert (before.version, before.policy) == (0, fallback)
        first = parse_policy('admins = ["ann"]\nstarters = ["bob"]', "toml")
        second = parse_policy('admins = ["ann"]\n[sg_2]\nrequired_approvals = 3', "toml")
        one = await replace(kb, before, first, by="cutter", at=AT)
        after = await replace(kb, await current(kb, fallback), second, by="ann", at=AT)
        assert await kb.list("policy") == [
            policy_change_id(one),
            policy_change_id(after),
            POLICY_CURRENT,
        ]
        stored = await current(kb, fallback)
        assert stored == after
        assert (stored.version, stored.set_by, stored.policy.sg_2.required_approvals) == (
            2,
            "ann",
            3,
        )
        change = await kb.get(policy_change_id(one))
        assert isinstance(change, PolicyVersion)
        assert (change.set_by, change.policy.starters) == ("cutter", ("bob",))
    finally:
        await control.close()
        await pool.close()
