"""The policy (who may do what) and principals, in process: parsing, per-document
rules, the gatekeeper reading the stored policy, and names that prove nobody."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from cutter.core.approvals import GatePolicy
from cutter.core.errors import (
    ApproverNotAllowed,
    PolicyInvalid,
    PolicyUnreadable,
    PrincipalMismatch,
    PrincipalUnknown,
)
from cutter.core.kbdocs import POLICY_CURRENT, ApprovalRefusal, PolicyVersion, policy_change_id
from cutter.core.policy import parse_policy
from cutter.core.principals import Caller, acting, principal_of_uid
from cutter.core.protocol import Error, ListRuns, Ping, PolicyInfo, Pong, ShowPolicy, StatusOf
from cutter.core.route import Gate
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.walk.policy_book import current, default_policy, replace
from tests._harness import DOC_ID, OPERATOR, REVIEWER, REVIEWER_2, build_runner
from tests._harness import write_sg1_approval as write_approval

POLICY = f"""
admins = ["root"]
relays = ["bot"]
starters = ["{OPERATOR}"]

[sg_1]
approvers = ["{REVIEWER}", "{REVIEWER_2}"]

[[documents]]
pattern = "doc-charter-*"
starters = ["someone-else"]

[documents.sg_1]
approvers = ["{REVIEWER}", "{REVIEWER_2}"]
required_approvals = 2
ttl_seconds = 600
"""


def test_a_document_rule_replaces_what_it_names_for_matching_documents() -> None:
    policy = parse_policy(POLICY, "toml")
    assert policy.starters_for("other-doc") == (OPERATOR,)
    assert policy.starters_for(DOC_ID) == ("someone-else",)
    matched, other = policy.gate_rule(DOC_ID, Gate.SG_1), policy.gate_rule("x", Gate.SG_1)
    assert (matched.required_approvals, matched.ttl_seconds) == (2, 600)
    assert (other.required_approvals, other.ttl_seconds) == (1, 24 * 3600)
    assert policy.gate_rule(DOC_ID, Gate.SG_2).approvers == ("*",)  # not named: the default


def test_json_and_toml_read_the_same_policy() -> None:
    import msgspec

    policy = parse_policy(POLICY, "toml")
    assert parse_policy(msgspec.json.encode(policy).decode(), "json") == policy


@pytest.mark.parametrize(
    "name", ["ann bob", "", "x\n", "a" * 300, "../x", "ann\u202ebob", "ünïcode", "a/b"]
)
def test_a_login_name_outside_the_alphabet_proves_nobody(name: str) -> None:
    assert principal_of_uid(1234, lambda _: name) is None


def test_a_uid_without_a_password_entry_is_named_by_its_number() -> None:
    def missing(uid: int) -> str:
        raise KeyError(uid)

    assert principal_of_uid(4321, missing) == "uid:4321"


def test_acting_names_the_principal_or_a_relays_client_and_nobody_else() -> None:
    policy = parse_policy(POLICY, "toml")
    assert acting(policy, Caller("ann", "p"), "approver", "ann") == "ann"
    assert acting(policy, Caller("bot", "p"), "approver", "carol") == "carol"
    with pytest.raises(PrincipalMismatch):
        acting(policy, Caller("ann", "p"), "approver", "carol")
    with pytest.raises(PrincipalUnknown):
        acting(policy, Caller(None, "p"), "approver", "ann")


def test_an_admin_list_of_everyone_is_refused() -> None:
    with pytest.raises(PolicyInvalid):
        parse_policy('admins = ["*"]', "toml")


@pytest.mark.anyio
async def test_the_gatekeeper_applies_the_stored_policy_per_document(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    stored = await replace(
        rig.kb,
        await current(rig.kb, default_policy(rig.runner.config.policy, "root")),
        parse_policy(POLICY, "toml"),
        by="root",
        at=datetime(2026, 5, 20, tzinfo=UTC),
    )
    assert stored.version == 1
    assert await rig.kb.list("policy/changes") == [policy_change_id(stored)]
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        gate = sc.pending_gate
        assert gate is not None
        assert gate.required_approvals == 2
        outsider = await write_approval(rig, sc.run_id, approver="reviewer-zed")
        with pytest.raises(ApproverNotAllowed):
            await rig.runner.resume(sc.run_id, outsider)
        refusals = [await rig.kb.get(k) for k in await rig.kb.list(f"runs/{sc.run_id}/refusals")]
        assert [r.code for r in refusals if isinstance(r, ApprovalRefusal)] == [
            "APPROVAL_NOT_ALLOWED"
        ]
        sc = await rig.runner.resume(sc.run_id, await write_approval(rig, sc.run_id))
        assert sc.pending_gate is not None
        assert len(sc.pending_gate.uses) == 1


@pytest.mark.anyio
async def test_a_damaged_policy_never_falls_back_to_a_laxer_one(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        rig.overwrite_kb_doc(POLICY_CURRENT, b'{"type":"policy_version","version":')
        kb_id = await write_approval(rig, sc.run_id)
        with pytest.raises(PolicyUnreadable):
            await rig.runner.resume(sc.run_id, kb_id)
        assert (await rig.run_store.load(sc.run_id)).pending_gate == sc.pending_gate


@pytest.mark.anyio
async def test_a_connection_that_proves_nobody_may_only_ping(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner, anyio.create_task_group() as jobs:
        daemon = Daemon(rig.runner, rig.kill_switch, EventBus(), jobs, owner="root")
        nobody = Caller(None, "unix peer without credentials")
        assert isinstance(await daemon.handle(Ping(), nobody), Pong)
        for command in (ShowPolicy(), ListRuns(), StatusOf(run_id="run-x")):
            reply = await daemon.handle(command, nobody)
            assert isinstance(reply, Error)
            assert reply.code == "E_PRINCIPAL_UNKNOWN"
        shown = await daemon.handle(ShowPolicy(), Caller("root", "stdio"))
        assert isinstance(shown, PolicyInfo)
        assert shown.version == 0
        assert shown.policy == default_policy(rig.runner.config.policy, "root")
        jobs.cancel_scope.cancel()
    with pytest.raises(KeyError):  # showing the default stored nothing
        await rig.kb.get(POLICY_CURRENT)


@pytest.mark.anyio
async def test_two_changes_to_one_version_are_both_recorded(tmp_path: Path) -> None:
    """Two daemons on one database that set the policy at once both start from version
    N: each change keeps its own record, the later one is current."""
    kb = build_runner(tmp_path).kb
    before = await current(kb, default_policy(GatePolicy(), "root"))
    at = datetime(2026, 5, 20, tzinfo=UTC)
    first = await replace(kb, before, parse_policy('admins = ["ann"]', "toml"), by="ann", at=at)
    second = await replace(kb, before, parse_policy('admins = ["bob"]', "toml"), by="bob", at=at)
    assert first.version == second.version == 1
    assert await kb.list("policy/changes") == sorted(
        [policy_change_id(first), policy_change_id(second)]
    )
    for change in (first, second):
        assert await kb.get(policy_change_id(change)) == change
    stored = await kb.get(POLICY_CURRENT)
    assert isinstance(stored, PolicyVersion)
    assert stored == second
