"""``db-approvals/`` belongs to PostgreSQL's db_approvals table alone (issue 11, part 5):
a file dropped there in the state directory is not served, no KB store writes one, and
only an approval served from there gets the proof "database"."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutter.approval_proof import prove
from cutter.errors import ApprovalSignatureRequired, InvalidIdentifier
from cutter.kbdocs import Approval, Decision
from cutter.policy import parse_policy
from cutter.runner import utc_now
from cutter.stores.files import FileKnowledgeBase, encode_kb_doc
from cutter.stores.memory_records import InMemoryKnowledgeBase
from cutter.walk import Gate

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


async def test_a_file_dropped_under_db_approvals_is_not_served(tmp_path: Path) -> None:
    kb = FileKnowledgeBase(tmp_path)
    path = kb.path_of(FORGED)
    path.parent.mkdir(parents=True)
    path.write_bytes(encode_kb_doc(FORGED, approval()))
    with pytest.raises(KeyError):
        await kb.get(FORGED)


async def test_no_kb_store_writes_under_db_approvals(tmp_path: Path) -> None:
    for kb in (FileKnowledgeBase(tmp_path), InMemoryKnowledgeBase()):
        with pytest.raises(InvalidIdentifier, match="written by the database alone"):
            await kb.put(FORGED, approval())
    assert not (tmp_path / "db-approvals").exists()


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
