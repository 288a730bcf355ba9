"""``cutter doctor``: every damaged record of a state directory or database, named.

One pass, read-only, over what the daemon keeps:

- every run's sidecar (``cutter.core.quarantine``: what the daemon lists as unreadable);
- every KB doc: it must decode, and be what its place says (an approval under
  ``approvals/``, a policy version under ``policy/``, a request under
  ``runs/<run>/gates/<gate>/request``);
- every gate request a readable run recorded: the doc must be the request the run
  recorded (``cutter.walk.gate_check.request_damage``: its subject hashes to the
  recorded digest, names the run, gate, nonce and pins) — what the gatekeeper
  refuses as ``GATE_REQUEST_DAMAGED``;
- the policy in force (``policy/current``);
- the ledger: its hash chain and every run's anchor (``cutter verify-ledger``'s
  check, ``cutter.walk.anchoring.verify_ledger``);
- on the embedded database: the file itself (``PRAGMA quick_check`` when it is
  opened — a damaged page is reported, not raised — then ``PRAGMA
  integrity_check``, which also compares every index with its table), and every
  consumed approval (``consumed_approvals``): the run it names exists and records
  the approval among its uses (both are written in one transaction, so a
  difference is damage, not a crash left half-done).

Nothing is repaired or moved, and no lock is taken: like ``verify-ledger`` it may
run beside a daemon that owns the state directory (it reads the last committed
state; SQLite's WAL lets it read while the daemon writes). PostgreSQL (``--dsn``)
needs a login that may read the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from cutter.core.anchors import describe
from cutter.core.control_docs import APPROVALS_PREFIX, POLICY_PREFIX
from cutter.core.errors import CorruptRecord, StorageCorrupt, one_line
from cutter.core.kbdocs import Approval, PolicyVersion, SovereignRequest
from cutter.core.ports import KnowledgeBase, LedgerReader, RunStore
from cutter.core.quarantine import RunScan, scan_runs
from cutter.walk.gate_check import request_damage

if TYPE_CHECKING:
    from cutter.stores.sqlite.database import Database

REQUEST_SUFFIX = "/request"


class Damage(msgspec.Struct, frozen=True, kw_only=True):
    """One damaged record: ``kind`` is run, kb, request, approval, policy, consumed,
    ledger or database; ``where`` the run id, kb_id, approval, ledger or file;
    ``code`` and ``reason`` say what is wrong."""

    kind: str
    where: str
    code: str
    reason: str


class DoctorReport(msgspec.Struct, frozen=True, kw_only=True):
    runs: int  # sidecars looked at
    kb_docs: int
    requests: int  # gate requests checked against the runs that recorded them
    consumed: int  # consumed approvals checked against their runs (0 on PostgreSQL)
    ledger_entries: int
    damage: tuple[Damage, ...]

    @property
    def ok(self) -> bool:
        return not self.damage


@dataclass(frozen=True, slots=True)
class Records:
    """What the doctor reads: the run store, the KB, the ledger, and for the
    embedded default the database they are in."""

    runs: RunStore
    kb: KnowledgeBase
    ledger: LedgerReader
    database: Database | None = None


def _kind_of(kb_id: str) -> str:
    if kb_id.startswith(APPROVALS_PREFIX + "/"):
        return "approval"
    if kb_id.startswith(POLICY_PREFIX + "/"):
        return "policy"
    if kb_id.startswith("runs/") and kb_id.endswith(REQUEST_SUFFIX):
        return "request"
    return "kb"


_EXPECTED: dict[str, type] = {
    "approval": Approval,
    "policy": PolicyVersion,
    "request": SovereignRequest,
}


async def examine(records: Records) -> DoctorReport:
    damage: list[Damage] = []
    scan = await scan_runs(records.runs)
    damage += [
        Damage(kind="run", where=u.run_id, code=u.code, reason=u.reason) for u in scan.unreadable
    ]
    kb_ids = await records.kb.list("")
    broken: set[str] = set()
    for kb_id in kb_ids:
        kind = _kind_of(kb_id)
        try:
            doc = await records.kb.get(kb_id)
        except KeyError:
            continue  # removed meanwhile
        except CorruptRecord as exc:
            damage.append(Damage(kind=kind, where=kb_id, code=exc.code, reason=exc.message))
            broken.add(kb_id)
            continue
        expected = _EXPECTED.get(kind)
        if expected is not None and not isinstance(doc, expected):
            wrong = f"a {type(doc).__name__} where a {expected.__name__} belongs"
            damage.append(Damage(kind=kind, where=kb_id, code=CorruptRecord.code, reason=wrong))
            broken.add(kb_id)
    requests = 0
    for sidecar in scan.runs:
        for gate in sidecar.gates:
            requests += 1
            if gate.request_kb_id in broken:
                continue  # named above already
            try:
                request: object = await records.kb.get(gate.request_kb_id)
            except (KeyError, CorruptRecord):
                request = None
            why = request_damage(sidecar, gate, request)
            if why is not None:
                damage.append(
                    Damage(
                        kind="request",
                        where=gate.request_kb_id,
                        code="GATE_REQUEST_DAMAGED",
                        reason=one_line(f"run {sidecar.run_id} {gate.gate}: {why}"),
                    )
                )
    consumed = 0
    if records.database is not None:
        damage += integrity_damage(records.database)
        consumed, found = consumed_damage(records.database, scan)
        damage += found
    entries, found = await _ledger(records)
    damage += found
    return DoctorReport(
        runs=len(scan.runs) + len(scan.unreadable),
        kb_docs=len(kb_ids),
        requests=requests,
        consumed=consumed,
        ledger_entries=entries,
        damage=tuple(damage),
    )


async def _ledger(records: Records) -> tuple[int, list[Damage]]:
    from cutter.walk.anchoring import verify_ledger

    try:
        report = await verify_ledger(records.ledger, records.kb)
    except CorruptRecord as exc:
        return 0, [Damage(kind="ledger", where=exc.location, code=exc.code, reason=exc.message)]
    if report.ok:
        return report.entries, []
    lines = [line for line in describe(report)[1:] if "intact" not in line]
    reason = one_line("; ".join(lines))
    where = "ledger" if report.chain_error is None else report.chain_error.partition(":")[0]
    return report.entries, [
        Damage(kind="ledger", where=one_line(where, 120), code="E_LEDGER_BROKEN", reason=reason)
    ]


def integrity_damage(db: Database) -> list[Damage]:
    """``PRAGMA integrity_check``'s findings (every page, every index against its
    table), one ``Damage`` naming the file; none when it says ``ok``."""
    rows = db.all("PRAGMA integrity_check(5)")
    problems = [str(r[0]) for r in rows if r[0] != "ok"]
    if not problems:
        return []
    reason = one_line("; ".join(problems))
    return [Damage(kind="database", where=db.location, code=StorageCorrupt.code, reason=reason)]


def consumed_damage(db: Database, scan: RunScan) -> tuple[int, list[Damage]]:
    """Every consumed approval whose run is missing, or does not record using it
    (an unreadable run is named already, as a run)."""
    rows = db.all("SELECT approval_kb_id, run_id FROM consumed_approvals ORDER BY approval_kb_id")
    readable = {sc.run_id: sc for sc in scan.runs}
    unreadable = {u.run_id for u in scan.unreadable}
    found: list[Damage] = []
    for kb_id, run_id in rows:
        if run_id in unreadable:
            continue
        sidecar = readable.get(run_id)
        if sidecar is None:
            why = f"consumed by run {run_id}, which does not exist"
        elif kb_id not in sidecar.approvals_used:
            why = f"consumed by run {run_id}, which does not record using it"
        else:
            continue
        found.append(
            Damage(kind="consumed", where=kb_id, code=CorruptRecord.code, reason=one_line(why))
        )
    return len(rows), found


def describe_report(report: DoctorReport) -> list[str]:
    lines = [
        f"checked: {report.runs} runs, {report.kb_docs} KB docs, {report.requests} gate "
        f"requests, {report.consumed} consumed approvals, {report.ledger_entries} ledger entries"
    ]
    lines += [f"DAMAGED {d.kind} {d.where}: {d.code}: {d.reason}" for d in report.damage]
    lines.append("all records readable" if report.ok else f"{len(report.damage)} damaged")
    return lines


async def examine_stores(state_dir: Path, dsn: str | None) -> DoctorReport:
    """The doctor on the embedded stores under ``state_dir``, or on PostgreSQL."""
    if dsn is None:
        return await _embedded(state_dir)
    return await _database(dsn)


async def _embedded(state_dir: Path) -> DoctorReport:
    from cutter.assembly.embedded import open_state_dir
    from cutter.core.state_dir import StateDir
    from cutter.stores.sqlite.records import SqliteKnowledgeBase, SqliteRunStore
    from cutter.stores.sqlite.target import SqliteLedger

    try:
        async with open_state_dir(state_dir) as db:
            return await examine(
                Records(
                    runs=SqliteRunStore(db),
                    kb=SqliteKnowledgeBase(db),
                    ledger=SqliteLedger(db),
                    database=db,
                )
            )
    except StorageCorrupt as exc:  # quick_check at open: the file is the damage
        where = str(StateDir(state_dir).database)
        damage = Damage(kind="database", where=where, code=exc.code, reason=exc.message)
        return DoctorReport(
            runs=0, kb_docs=0, requests=0, consumed=0, ledger_entries=0, damage=(damage,)
        )


async def _database(dsn: str) -> DoctorReport:
    from cutter.stores.pg.connect import create_pool
    from cutter.stores.pg.records import PgKnowledgeBase, PgRunStore
    from cutter.stores.pg.target import PgLedger

    pool = await create_pool(dsn, min_size=0, max_size=1)
    try:
        return await examine(
            Records(runs=PgRunStore(pool), kb=PgKnowledgeBase(pool), ledger=PgLedger(pool))
        )
    finally:
        await pool.close()
