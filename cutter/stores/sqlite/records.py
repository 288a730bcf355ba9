"""The embedded orchestrator records: KB docs, runs, consumed approvals, the kill switch.

Semantics as ``cutter.stores.memory.records`` and ``cutter.stores.pg.records``. Exactly once
by constraint: consuming an approval is an insert into ``consumed_approvals`` (its
primary key is the approval's kb_id) in the same write, hence the same transaction,
as the save of the advanced run; a second consumer finds the row and saves nothing.
One open run per document is the partial unique index ``runs_one_open_per_document``.

There is one writer: whoever can write the state directory writes the policy, the
approvals, the consumption records and the kill switch as easily as the sidecars (no
counterpart of PostgreSQL's ``cutter_control``); LIVE gates that take only
``"signature"`` proofs are the defence (docs/gates.md).
"""

from __future__ import annotations

import builtins
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cutter.core.codec import decode_kb_doc, decode_stored_sidecar, encode_kb_doc, encode_sidecar
from cutter.core.db_approvals import is_database_approval, reserved
from cutter.core.errors import (
    ApprovalConsumedAlready,
    CorruptRecord,
    DocumentBusy,
    UnknownRun,
    one_line,
)
from cutter.core.ids import check_kb_id, check_run_id
from cutter.core.kbdocs import KBDoc
from cutter.core.notices import Notice
from cutter.core.quarantine import UnreadableRun, unreadable
from cutter.core.run_pages import RunFilter
from cutter.core.run_revision import revision_refusal
from cutter.core.sidecar import ApprovalUse, Sidecar
from cutter.stores.enqueued import Enqueued
from cutter.stores.sqlite.database import Database
from cutter.stores.sqlite.outbox import SqliteOutbox, insert_notices

ONE_OPEN_RUN_INDEX = "runs.doc_id"  # how SQLite names the partial unique index's column
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


class SqliteKnowledgeBase:
    """``KnowledgeBase`` in ``kb_docs``: one row per doc, its exact msgspec JSON bytes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, kb_id: str, doc: KBDoc) -> None:
        kb_id = reserved(check_kb_id(kb_id))
        data = encode_kb_doc(kb_id, doc)
        await self.db.write(
            lambda c: c.execute(
                "INSERT INTO kb_docs (kb_id, doc) VALUES (?, ?) ON CONFLICT (kb_id) DO UPDATE"
                f" SET doc = excluded.doc, updated_at = {_NOW} WHERE doc IS NOT excluded.doc",
                (kb_id, data),
            )
        )

    async def get(self, kb_id: str) -> KBDoc:
        kb_id = check_kb_id(kb_id)
        # Only PostgreSQL's db_approvals table answers for db-approvals/.
        data = (
            None
            if is_database_approval(kb_id)
            else self.db.value("SELECT doc FROM kb_docs WHERE kb_id = ?", (kb_id,))
        )
        if data is None:
            raise KeyError(kb_id)
        return decode_kb_doc(bytes(data), f"kb_docs/{kb_id}")

    async def list(self, prefix: str) -> builtins.list[str]:
        """Sorted ids of the doc ``prefix`` and the docs below it; ``""`` lists all. The
        docs below are the range [prefix + "/", prefix + "0"): ``0`` follows ``/``."""
        if not prefix:
            rows = self.db.all("SELECT kb_id FROM kb_docs ORDER BY kb_id")
        else:
            check_kb_id(prefix)
            rows = self.db.all(
                "SELECT kb_id FROM kb_docs WHERE kb_id = ? OR (kb_id >= ? AND kb_id < ?)"
                " ORDER BY kb_id",
                (prefix, prefix + "/", prefix + "0"),
            )
        return [r[0] for r in rows]


def _busy(conn: sqlite3.Connection, exc: sqlite3.IntegrityError, doc_id: str) -> DocumentBusy:
    """The ``DocumentBusy`` a violation of the one-open-run index is; re-raise others."""
    if ONE_OPEN_RUN_INDEX not in str(exc):
        raise exc
    holder = conn.execute(
        "SELECT run_id FROM runs WHERE doc_id = ?"
        " AND state NOT IN ('CLOSEOUT_REPORTED', 'REJECTED', 'ABORTED', 'FAILED')",
        (doc_id,),
    ).fetchone()
    return DocumentBusy(doc_id, "another run" if holder is None else f"run {holder[0]}")


def _save(
    conn: sqlite3.Connection, sidecar: Sidecar, data: bytes, notices: builtins.list[Notice]
) -> None:
    """Compare-and-save (``cutter.core.run_revision``): one ``UPDATE`` over the revision
    before the sidecar's; no row updated is ``RunChanged`` or ``UnknownRun``, and the
    write (with a consumption in it) is undone."""
    try:
        updated = conn.execute(
            f"UPDATE runs SET doc_id = ?, state = ?, sidecar = ?, revision = ?, updated_at = {_NOW}"
            " WHERE run_id = ? AND revision = ?",
            (
                sidecar.doc_id,
                sidecar.state.value,
                data,
                sidecar.revision,
                sidecar.run_id,
                sidecar.revision - 1,
            ),
        ).rowcount
    except sqlite3.IntegrityError as exc:
        raise _busy(conn, exc, sidecar.doc_id) from None
    if updated != 1:
        row = conn.execute("SELECT revision FROM runs WHERE run_id = ?", (sidecar.run_id,))
        stored = row.fetchone()
        raise revision_refusal(
            sidecar.run_id, None if stored is None else stored[0], sidecar.revision
        )
    insert_notices(conn, notices)  # the outbox commits (or rolls back) with the save


class SqliteRunStore(SqliteOutbox):
    """``RunStore`` in ``runs`` and ``consumed_approvals``; its outbox in ``outbox``
    and ``deliveries`` (``cutter.stores.sqlite.outbox``)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._enqueued = Enqueued()

    async def load(self, run_id: str) -> Sidecar:
        run_id = check_run_id(run_id)
        data = self.db.value("SELECT sidecar FROM runs WHERE run_id = ?", (run_id,))
        if data is None:
            raise UnknownRun(run_id)
        return decode_stored_sidecar(bytes(data), run_id, f"runs/{run_id}")

    async def create(self, sidecar: Sidecar) -> None:
        """One insert: the index refuses a second open run of the document."""
        data = encode_sidecar(sidecar)
        notices = self._enqueued.fresh(sidecar)

        def create(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO runs (run_id, doc_id, state, sidecar, revision)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (sidecar.run_id, sidecar.doc_id, sidecar.state.value, data, sidecar.revision),
                )
            except sqlite3.IntegrityError as exc:
                raise _busy(conn, exc, sidecar.doc_id) from None
            insert_notices(conn, notices)

        await self.db.write(create)
        self._enqueued.committed(sidecar, notices)

    async def save(self, sidecar: Sidecar) -> None:
        data = encode_sidecar(sidecar)
        notices = self._enqueued.fresh(sidecar)
        await self.db.write(lambda c: _save(c, sidecar, data, notices))
        self._enqueued.committed(sidecar, notices)

    async def save_consuming(self, sidecar: Sidecar, use: ApprovalUse) -> None:
        kb_id = check_kb_id(use.approval_kb_id)
        data = encode_sidecar(sidecar)
        at = use.consumed_at.astimezone(UTC).isoformat()
        notices = self._enqueued.fresh(sidecar)

        def consume(conn: sqlite3.Connection) -> None:
            won = conn.execute(
                "INSERT INTO consumed_approvals (approval_kb_id, run_id, consumed_at)"
                " VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING approval_kb_id",
                (kb_id, sidecar.run_id, at),
            ).fetchone()
            if won is None:
                raise ApprovalConsumedAlready(sidecar.run_id, kb_id)
            _save(conn, sidecar, data, notices)

        # consume:committed — the consumption and the run's advance are durable, the
        # caller not yet told: the crash point right after an approval is consumed.
        await self.db.write(consume, after_commit="consume:committed")
        self._enqueued.committed(sidecar, notices)

    async def consumed_by(self, approval_kb_id: str) -> str | None:
        kb_id = check_kb_id(approval_kb_id)
        value = self.db.value(
            "SELECT run_id FROM consumed_approvals WHERE approval_kb_id = ?", (kb_id,)
        )
        return None if value is None else str(value)

    async def consumed_for(self, run_id: str) -> builtins.list[str]:
        run_id = check_run_id(run_id)
        rows = self.db.all(
            "SELECT approval_kb_id FROM consumed_approvals WHERE run_id = ?"
            " ORDER BY approval_kb_id",
            (run_id,),
        )
        return [r[0] for r in rows]

    async def run_ids(self) -> builtins.list[str]:
        return [r[0] for r in self.db.all("SELECT run_id FROM runs ORDER BY run_id")]

    async def page(
        self, after: str, limit: int, where: RunFilter
    ) -> builtins.list[Sidecar | UnreadableRun]:
        """One indexed query: the filter and the limit run in SQL."""
        clauses = ["run_id > ?"]
        args: builtins.list[Any] = [after]
        if where.state is not None:
            clauses.append("state = ?")
            args.append(where.state.value)
        if where.doc_id is not None:
            clauses.append("doc_id = ?")
            args.append(where.doc_id)
        args.append(limit)
        rows = self.db.all(
            f"SELECT run_id, sidecar FROM runs WHERE {' AND '.join(clauses)}"
            " ORDER BY run_id LIMIT ?",
            tuple(args),
        )
        found: builtins.list[Sidecar | UnreadableRun] = []
        for run_id, data in rows:
            try:
                found.append(decode_stored_sidecar(bytes(data), run_id, f"runs/{run_id}"))
            except CorruptRecord as exc:  # set aside, named (cutter.core.quarantine)
                found.append(unreadable(run_id, exc))
        return found


class SqliteKillSwitch:
    """``KillSwitchControl`` in ``kill_switch``: engaged unless the database positively
    says it is not (it fails closed)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def engaged(self) -> bool:
        try:
            value = self.db.value("SELECT engaged FROM kill_switch WHERE id = 1")
        except Exception:  # any failure to read it counts as engaged
            return True
        return bool(value != 0)

    async def engage(self, reason: str) -> None:
        await self._set(True, one_line(reason))

    async def release(self) -> None:
        await self._set(False, "")

    async def _set(self, engaged: bool, reason: str) -> None:
        at = datetime.now(UTC).isoformat()
        await self.db.write(
            lambda c: c.execute(
                "UPDATE kill_switch SET engaged = ?, reason = ?, changed_at = ? WHERE id = 1",
                (int(engaged), reason, at),
            )
        )


if TYPE_CHECKING:  # the stores satisfy the ports (checked by mypy, free at run time)
    from cutter.core.ports import KillSwitchControl, KnowledgeBase, RunStore

    def _check(db: Database) -> None:
        _kb: KnowledgeBase = SqliteKnowledgeBase(db)
        _runs: RunStore = SqliteRunStore(db)
        _switch: KillSwitchControl = SqliteKillSwitch(db)
