"""``db-approvals/`` belongs to PostgreSQL's db_approvals table alone (issue 11, part 5):
a doc written there into the embedded database by hand is not served, no KB store
writes one, and only an approval served from there gets the proof "database"."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutter.core.codec import encode_kb_doc
from cutter.core.errors import ApprovalSignatureRequired, InvalidIdentifier
from cutter.core.kbdocs import Approval, Decision
from cutter.core.policy import parse_policy
from cutter.core.route import Gate
from cutter.stores.memory.records import InMemoryKnowledgeBase
from cutter.stores.sqlite.records import SqliteKnowledgeBase
from cutter.walk.approval_proof import prove
from cutter.walk.runner import utc_now
from tests._harness import hand_edit, open_database_now, stored_rows

pytestmark = pytest.mark.anyio

FORGED = "db-approvals/SG_1-forged"


def approval() -> Approval:
    return Approval(
        run_id="run-0123456789abcdef",
        gate=Gate.SG_1,
        request_digest="d" * 64,
        nonce="n" * 32,
        decision=Decision.APPROVE,
        approver="bob",
        principal="bob",
        reason="looks right",
        issued_at=utc_now(),
    )


async def test_a_doc_written_by_hand_under_db_approvals_is_not_served(tmp_path: Path) -> None:
    kb = SqliteKnowledgeBase(open_database_now(tmp_path))
    data = encode_kb_doc(FORGED, approval())
    sql = "INSERT INTO kb_docs (kb_id, doc) VALUES (?, ?)"
    assert hand_edit(kb.db.path, sql, FORGED, data) == 1
    with pytest.raises(KeyError):
        await kb.get(FORGED)


async def test_no_kb_store_writes_under_db_approvals(tmp_path: Path) -> None:
    embedded = SqliteKnowledgeBase(open_database_now(tmp_path))
    before = stored_rows(embedded.db.path)
    for kb in (embedded, InMemoryKnowledgeBase()):
        with pytest.raises(InvalidIdentifier, match="written by the database alone"):
            await kb.put(FORGED, approval())
        assert await kb.list("") == []
    assert stored_rows(embedded.db.path) == before


async def test_only_an_approval_served_from_db_approvals_proves_database() -> None:
    proven = await prove(approval(), FORGED, proofs=("database",), reviewer_keys={})
    assert proven.proof == "database"
    with pytest.raises(ApprovalSignatureRequired):
        await prove(approval(), "approvals/run-x/SG_1", proofs=("database",), reviewer_keys={})
    with pytest.raises(ApprovalSignatureRequired, match="stamped by the database"):
        await prove(approval(), FORGED, proofs=("peer",), reviewer_keys={})


def test_a_policy_may_name_the_database_proof() -> None:
    policy = parse_policy(
        'admins = ["ann"]\n[sg_1]\napprovers = ["bob"]\nproofs = ["database"]', "toml"
    )
    assert policy.sg_1.proofs == ("database",)
