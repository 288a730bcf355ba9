"""PostgreSQL stores for the orchestrator's own records: KB docs, runs, consumed
approvals, and the kill switch.

Consuming an approval is one conditional ``INSERT … ON CONFLICT DO NOTHING
RETURNING`` inside the transaction that saves the advanced sidecar: zero rows
means another run or process consumed it first, and nothing is saved.

Two pools: ``pool`` acts as the IU writer (``cutter_writer``), ``control`` as the
gatekeeper's role (``cutter_control``, ``cutter.stores.pg.roles``). Exactly the writes the
gate trusts go through ``control``: consuming an approval (with the save of the
advanced run, one transaction), KB docs under ``policy/`` and ``approvals/``
(``cutter.core.control_docs``), and setting the kill switch. Without a control pool both
are one (a login holding both roles, the weaker setup).
"""

from __future__ import annotations

import builtins
import hashlib
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager, nullcontext

import asyncpg
import msgspec

from cutter.core.codec import decode_kb_doc, decode_stored_sidecar, encode_kb_doc, encode_sidecar
from cutter.core.control_docs import is_controlled
from cutter.core.db_approvals import is_database_approval, reserved
from cutter.core.errors import (
    ApprovalConsumedAlready,
    CorruptRecord,
    DocumentBusy,
    UnknownRun,
    one_line,
)
from cutter.core.ids import check_kb_id, check_run_id
from cutter.core.kbdocs import Approval, Decision, KBDoc
from cutter.core.notices import Notice
from cutter.core.quarantine import UnreadableRun, unreadable
from cutter.core.route import Gate
from cutter.core.run_pages import RunFilter
from cutter.core.run_revision import revision_refusal
from cutter.core.sidecar import ApprovalUse, Sidecar
from cutter.stores.enqueued import Enqueued
from cutter.stores.pg import queries as q
from cutter.stores.pg.connect import domain_errors
from cutter.stores.pg.outbox import PgOutbox, insert_notices

# A doc this large that ``get`` decoded is kept, with the sha256 of the bytes it was
# decoded from, in a small per-store cache; the cutplan doc of 10,000 IUs is 2.3 MB.
CACHE_MIN_BYTES = 64 * 1024
CACHE_ENTRIES = 4


class PgKnowledgeBase:
    """KB docs in ``kb_docs``.

    ``get`` of a large doc read before asks the server for the sha256 of the bytes
    stored now (32 bytes back, not megabytes) and returns the doc it decoded earlier
    only when that digest equals the digest of the bytes it decoded then: the same
    bytes, so the same doc. Any other answer (changed, corrupt, deleted) reads the
    row as a first ``get`` would, so a ``get`` still returns exactly what decoding
    the stored bytes gives, or raises as that would. Dicts of a cached doc are
    copied on each return, so no caller can change what another is given.

    ``put`` of a controlled doc (the policy, an approval the daemon attests) goes
    through ``control``."""

    def __init__(self, pool: asyncpg.Pool, control: asyncpg.Pool | None = None) -> None:
        self.pool = pool
        self.control = pool if control is None else control
        self._decoded: OrderedDict[str, tuple[bytes, KBDoc]] = OrderedDict()

    async def put(self, kb_id: str, doc: KBDoc) -> None:
        kb_id = reserved(check_kb_id(kb_id))
        data = encode_kb_doc(kb_id, doc)
        self._decoded.pop(kb_id, None)
        pool = self.control if is_controlled(kb_id) else self.pool
        with domain_errors("KB put"):
            await pool.execute(q.KB_PUT, kb_id, data)

    async def get(self, kb_id: str) -> KBDoc:
        kb_id = check_kb_id(kb_id)
        if is_database_approval(kb_id):
            return await self._database_approval(kb_id)
        cached = self._decoded.get(kb_id)
        if cached is not None:
            with domain_errors("KB get"):
                stored_sha = await self.pool.fetchval(q.KB_SHA256, kb_id)
            if stored_sha is not None and bytes(stored_sha) == cached[0]:
                self._decoded.move_to_end(kb_id)
                return _unshared(cached[1])
            self._decoded.pop(kb_id, None)
        with domain_errors("KB get"):
            data = await self.pool.fetchval(q.KB_GET, kb_id)
        if data is None:
            raise KeyError(kb_id)
        data = bytes(data)
        doc = decode_kb_doc(data, f"kb_docs/{kb_id}")
        if len(data) < CACHE_MIN_BYTES:
            return doc
        self._decoded[kb_id] = (hashlib.sha256(data).digest(), doc)
        while len(self._decoded) > CACHE_ENTRIES:
            self._decoded.popitem(last=False)
        return _unshared(doc)

    async def list(self, prefix: str) -> builtins.list[str]:
        if prefix:
            check_kb_id(prefix)
        with domain_errors("KB list"):
            return [r["kb_id"] for r in await self.pool.fetch(q.KB_LIST, prefix)]

    async def _database_approval(self, kb_id: str) -> Approval:
        """Row ``X`` of ``db_approvals`` as the approval ``db-approvals/X``: its approver
        is the login the database stamped, never a name the inserting client gave."""
        with domain_errors("KB get"):
            row = await self.pool.fetchrow(q.DB_APPROVAL_GET, kb_id.partition("/")[2])
        if row is None:
            raise KeyError(kb_id)
        try:
            return Approval(
                run_id=row["run_id"],
                gate=Gate(row["gate"]),
                request_digest=row["request_digest"],
                nonce=row["nonce"],
                decision=Decision(row["decision"]),
                approver=row["principal"],
                principal=row["principal"],
                reason=row["reason"],
                issued_at=row["issued_at"],
                review_decision_id=row["review_decision_id"],
            )
        except ValueError as exc:  # a gate or decision the table's checks would refuse
            raise CorruptRecord(f"db_approvals/{kb_id}", one_line(str(exc))) from None


def _unshared(doc: KBDoc) -> KBDoc:
    """``doc`` with its dict fields copied (the only mutable values a KB doc holds; the
    rest are frozen structs, tuples, and scalars)."""
    dicts = {
        name: dict(value)
        for name in doc.__struct_fields__
        if isinstance(value := getattr(doc, name), dict)
    }
    return msgspec.structs.replace(doc, **dicts) if dicts else doc


class PgRunStore(PgOutbox):
    """Runs in ``runs``; consuming an approval goes through ``control``. Every save
    inserts the sidecar's notices into the outbox in its transaction
    (``cutter.stores.pg.outbox``)."""

    def __init__(self, pool: asyncpg.Pool, control: asyncpg.Pool | None = None) -> None:
        self.pool = pool
        self.control = pool if control is None else control
        self._enqueued = Enqueued()

    async def load(self, run_id: str) -> Sidecar:
        run_id = check_run_id(run_id)
        with domain_errors("run load"):
            data = await self.pool.fetchval(q.RUN_LOAD, run_id)
        if data is None:
            raise UnknownRun(run_id)
        return decode_stored_sidecar(bytes(data), run_id, f"runs/{run_id}")

    async def create(self, sidecar: Sidecar) -> None:
        """One ``INSERT``: the partial unique index ``runs_one_open_per_document``
        refuses a second open run of the document, in any process."""
        data = encode_sidecar(sidecar)
        notices = self._enqueued.fresh(sidecar)
        with domain_errors("run create"):
            try:
                async with self.pool.acquire() as conn, _transaction(conn, notices):
                    await conn.execute(
                        q.RUN_CREATE,
                        sidecar.run_id,
                        sidecar.doc_id,
                        sidecar.state.value,
                        data,
                        sidecar.revision,
                    )
                    await insert_notices(conn, notices)
            except asyncpg.UniqueViolationError as exc:
                raise await self._busy(sidecar, exc) from None
        self._enqueued.committed(sidecar, notices)

    async def save(self, sidecar: Sidecar) -> None:
        """Compare-and-save in one ``UPDATE`` (``cutter.core.run_revision``): no row
        updated is ``RunChanged`` (another walker saved first) or ``UnknownRun``.
        The index holds here too: reopening a run over another open one of its
        document is ``DocumentBusy``."""
        data = encode_sidecar(sidecar)
        notices = self._enqueued.fresh(sidecar)
        with domain_errors("run save"):
            try:
                async with self.pool.acquire() as conn, _transaction(conn, notices):
                    await _compare_and_save(conn, sidecar, data, notices)
            except asyncpg.UniqueViolationError as exc:
                raise await self._busy(sidecar, exc) from None
        self._enqueued.committed(sidecar, notices)

    async def _busy(self, sidecar: Sidecar, exc: asyncpg.UniqueViolationError) -> Exception:
        if exc.constraint_name != q.ONE_OPEN_RUN_INDEX:
            return exc
        holder = await self.pool.fetchval(q.OPEN_RUN_OF, sidecar.doc_id)
        return DocumentBusy(sidecar.doc_id, "another run" if holder is None else f"run {holder}")

    async def save_consuming(self, sidecar: Sidecar, use: ApprovalUse) -> None:
        """One transaction: the consumption's ``INSERT`` (``ApprovalConsumedAlready``
        when the row exists), then the compare-and-save; a refused save rolls the
        consumption back with it."""
        kb_id = check_kb_id(use.approval_kb_id)
        data = encode_sidecar(sidecar)
        notices = self._enqueued.fresh(sidecar)
        with domain_errors("consume approval"):
            async with self.control.acquire() as conn, conn.transaction():
                won = await conn.fetchval(q.CONSUME, kb_id, sidecar.run_id, use.consumed_at)
                if won is None:
                    raise ApprovalConsumedAlready(sidecar.run_id, kb_id)
                await _compare_and_save(conn, sidecar, data, notices)
        self._enqueued.committed(sidecar, notices)

    async def consumed_by(self, approval_kb_id: str) -> str | None:
        kb_id = check_kb_id(approval_kb_id)
        with domain_errors("consumption lookup"):
            value = await self.pool.fetchval(q.CONSUMED_BY, kb_id)
        return None if value is None else str(value)

    async def consumed_for(self, run_id: str) -> builtins.list[str]:
        run_id = check_run_id(run_id)
        with domain_errors("consumption lookup"):
            return [r["approval_kb_id"] for r in await self.pool.fetch(q.CONSUMED_FOR, run_id)]

    async def run_ids(self) -> builtins.list[str]:
        with domain_errors("run list"):
            return [r["run_id"] for r in await self.pool.fetch(q.RUN_IDS)]

    async def page(
        self, after: str, limit: int, where: RunFilter
    ) -> builtins.list[Sidecar | UnreadableRun]:
        """One indexed query (migration 0005): the filter and the limit run in SQL."""
        query = q.run_page(where.state is not None, where.doc_id is not None)
        args: builtins.list[object] = [after, limit]
        if where.state is not None:
            args.append(where.state.value)
        if where.doc_id is not None:
            args.append(where.doc_id)
        with domain_errors("run list"):
            rows = await self.pool.fetch(query, *args)
        found: builtins.list[Sidecar | UnreadableRun] = []
        for r in rows:
            try:
                stored, run_id = bytes(r["sidecar"]), r["run_id"]
                found.append(decode_stored_sidecar(stored, run_id, f"runs/{run_id}"))
            except CorruptRecord as exc:  # set aside, named (cutter.core.quarantine)
                found.append(unreadable(r["run_id"], exc))
        return found


def _transaction(
    conn: asyncpg.pool.PoolConnectionProxy, notices: builtins.list[Notice]
) -> AbstractAsyncContextManager[object]:
    """A transaction for a save that also inserts notices; one statement alone (no new
    notice to insert) is atomic by itself and spares the BEGIN and COMMIT round trips."""
    return conn.transaction() if notices else nullcontext()


async def _compare_and_save(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    sidecar: Sidecar,
    data: bytes,
    notices: builtins.list[Notice],
) -> None:
    """Save ``sidecar`` only over the revision before it, else raise why not; with it,
    its notices into the outbox (then inside a transaction, ``_transaction``)."""
    status = await conn.execute(
        q.RUN_SAVE, sidecar.run_id, sidecar.doc_id, sidecar.state.value, data, sidecar.revision
    )
    if status != "UPDATE 1":
        stored = await conn.fetchval(q.RUN_REVISION, sidecar.run_id)
        raise revision_refusal(sidecar.run_id, stored, sidecar.revision)
    await insert_notices(conn, notices)  # the outbox commits (or rolls back) with the save


class PgKillSwitch:
    """Engaged unless the database positively says it is not: it fails closed.
    Engaging and releasing go through ``control``."""

    def __init__(self, pool: asyncpg.Pool, control: asyncpg.Pool | None = None) -> None:
        self.pool = pool
        self.control = pool if control is None else control

    async def engaged(self) -> bool:
        try:
            value = await self.pool.fetchval(q.KILL_SWITCH_STATE)
        except Exception:  # any failure to read it counts as engaged
            return True
        return value is not False

    async def engage(self, reason: str) -> None:
        with domain_errors("engage kill switch"):
            await self.control.execute(q.KILL_SWITCH_SET, True, reason)

    async def release(self) -> None:
        with domain_errors("release kill switch"):
            await self.control.execute(q.KILL_SWITCH_SET, False, "")
