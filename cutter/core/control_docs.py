"""The KB docs the gate trusts, and where it reads approvals from.

``policy/…`` (``policy/current`` and ``policy/changes/…``) and ``approvals/…`` (the
decisions the daemon stores and attests, ``cutter.core.approvals.decision_kb_id``) are
*controlled*: on PostgreSQL only a login in ``cutter_control`` may write them
(migration 0004), and ``PgKnowledgeBase`` writes them through the control
connection. The gate reads an approval only from ``approvals/…`` or from
``db-approvals/…`` (rows the database stamped, ``cutter.core.db_approvals``): an
``Approval`` anywhere else is somewhere the IU writer can write, so it proves
nothing and is never consumed. On the embedded database whoever can write the
state directory can write everything; there signatures are the defence (docs/gates.md, Trust model).
"""

from __future__ import annotations

from cutter.core.db_approvals import is_database_approval

POLICY_PREFIX = "policy"
APPROVALS_PREFIX = "approvals"
CONTROLLED = (POLICY_PREFIX, APPROVALS_PREFIX)


def is_controlled(kb_id: str) -> bool:
    """A KB doc only the control role writes (the policy, the daemon's approvals)."""
    return any(kb_id == p or kb_id.startswith(p + "/") for p in CONTROLLED)


def is_approval_location(kb_id: str) -> bool:
    """Where the gate reads approvals: ``approvals/…`` or ``db-approvals/…``."""
    return kb_id.startswith(APPROVALS_PREFIX + "/") or is_database_approval(kb_id)
