"""Approvals the database stamped: the ``db-approvals/`` KB prefix (issue 11, part 5).

A reviewer inserts a decision into PostgreSQL's ``db_approvals`` table as their own
login (``cutter approve --dsn``); the database stamps ``principal`` with
``session_user`` (migration 0003). ``PgKnowledgeBase`` serves row ``X`` as the
approval ``db-approvals/X`` whose ``approver`` and ``principal`` are that login, and
only the table can answer for an id under this prefix: every KB store refuses to
store one (``reserved``) and the file and memory stores hold none, so an approval
read from here carries the proof ``"database"`` (``cutter.walk.approval_proof``).
"""

from __future__ import annotations

from cutter.core.errors import InvalidIdentifier

PREFIX = "db-approvals"


def is_database_approval(kb_id: str) -> bool:
    return kb_id.startswith(PREFIX + "/")


def kb_id_of(approval_id: str) -> str:
    return f"{PREFIX}/{approval_id}"


def reserved(kb_id: str) -> str:
    """``kb_id`` unless it lies under ``db-approvals/``, which no KB store may write."""
    if is_database_approval(kb_id) or kb_id == PREFIX:
        raise InvalidIdentifier(
            "kb_id", f"{kb_id[:60]!r}: {PREFIX}/ is written by the database alone"
        )
    return kb_id
