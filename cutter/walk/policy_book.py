"""The policy where the run state lives: KB docs, so both stores keep it unchanged.

``policy/current`` is what the daemon and the gatekeeper enforce; every change is
also written to ``policy/changes/<version>-<digest>`` first, so the record of changes is
never behind what is enforced. No ``policy/current`` yet: the default
(``default_policy``), built from the daemon's own options.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cutter.core.approvals import GatePolicy
from cutter.core.errors import CorruptRecord
from cutter.core.kbdocs import POLICY_CURRENT, PolicyVersion, policy_change_id
from cutter.core.policy import GateRule, Policy, check_policy
from cutter.core.ports import KnowledgeBase
from cutter.core.route import Gate


def gate_policy(policy: Policy, doc_id: str, gate: Gate) -> GatePolicy:
    """The rule the gatekeeper applies to ``gate`` of a run of ``doc_id``."""
    rule = policy.gate_rule(doc_id, gate)
    return GatePolicy(
        approval_ttl=timedelta(seconds=rule.ttl_seconds),
        allow_self_approval=rule.allow_self_approval,
        required_approvals=rule.required_approvals,
        approvers=rule.approvers,
        proofs=rule.proofs,
        live_proofs=rule.live_proofs,
    )


def default_policy(gates: GatePolicy, owner: str) -> Policy:
    """The policy of a daemon nobody gave one: what it did before policies existed.

    Its own principal (who can write the state directory anyway) administers and
    may relay; everyone who reaches the socket may start and approve; the daemon's
    ``--required-approvals``/``--allow-self-approval`` apply to both gates."""
    rule = GateRule(
        approvers=gates.approvers,
        required_approvals=gates.required_approvals,
        ttl_seconds=int(gates.approval_ttl.total_seconds()),
        allow_self_approval=gates.allow_self_approval,
    )
    return Policy(admins=(owner,), relays=(owner,), sg_1=rule, sg_2=rule)


async def current(kb: KnowledgeBase, fallback: Policy) -> PolicyVersion:
    """The policy in force: the stored one, or ``fallback`` as version 0.
    A stored one that cannot be read is ``CorruptRecord``: nothing falls back to a
    laxer policy because a file was damaged."""
    try:
        doc = await kb.get(POLICY_CURRENT)
    except KeyError:
        return PolicyVersion(
            version=0, policy=fallback, set_by="", set_at=datetime.fromtimestamp(0, UTC)
        )
    if not isinstance(doc, PolicyVersion):
        raise CorruptRecord(POLICY_CURRENT, f"a {type(doc).__name__}, not a policy")
    return doc


async def replace(
    kb: KnowledgeBase, before: PolicyVersion, policy: Policy, *, by: str, at: datetime
) -> PolicyVersion:
    """Store ``policy`` as the version after ``before``: the change record, then current."""
    after = PolicyVersion(
        version=before.version + 1, policy=check_policy(policy), set_by=by, set_at=at
    )
    await kb.put(policy_change_id(after), after)
    await kb.put(POLICY_CURRENT, after)
    return after
