"""``cutter doctor``: every damaged record of a state directory or database, named.

One pass, read-only, over what the daemon keeps:

- every run's sidecar (``cutter.quarantine``: what the daemon lists as unreadable);
- every KB doc: it must decode, and be what its place says (an approval under
  ``approvals/``, a policy version under ``policy/``, a request under
  ``runs/<run>/gates/<gate>/request``);
- every gate request a readable run recorded: the doc must be the request the run
  recorded (``cutter.gate_check.request_damage``: its subject hashes to the
  recorded digest, names the run, gate, nonce and pins) — what the gatekeeper
  refuses as ``GATE_REQUEST_DAMAGED``;
- the policy in force (``policy/current``);
- the consumption journal of the file store (``consumed/``: each record decodes and
  sits under the name of the approval it names);
- the ledger: its hash chain and every run's anchor (``cutter verify-ledger``'s
  check, ``cutter.anchoring.verify_ledger``).

Nothing is written, repaired or moved, and no lock is taken: like ``verify-ledger``
it may run beside a daemon that owns the state directory (every record is written
atomically, so a reader sees it whole; a ledger line being appended at that very
moment can read as a partial line — run it again). PostgreSQL (``--dsn``) needs a
login that may read the tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import msgspec

from cutter.anchors import describe
from cutter.control_docs import APPROVALS_PREFIX, POLICY_PREFIX
from cutter.errors import CorruptRecord, InvalidIdentifier, one_line
from cutter.gate_check import request_damage
from cutter.kbdocs import Approval, PolicyVersion, SovereignRequest
from cutter.ports import KnowledgeBase, LedgerReader, RunStore
from cutter.quarantine import scan_runs
from cutter.stores.files import SUFFIX, ConsumedApproval, journal_name

REQUEST_SUFFIX = "/request"


class Damage(msgspec.Struct, frozen=True, kw_only=True):
    """One damaged record: ``kind`` is run, kb, request, approval, policy, journal or
    ledger; ``where`` the run id, kb_id, file or ledger; ``code`` and ``reason`` say
    what is wrong."""

    kind: str
    where: str
    code: str
    reason: str


class DoctorReport(msgspec.Struct, frozen=True, kw_only=True):
    runs: int  # sidecars looked at
    kb_docs: int
    requests: int  # gate requests checked against the runs that recorded them
    journal: int  # consumption records (file store; 0 on PostgreSQL)
    ledger_entries: int
    damage: tuple[Damage, ...]

    @property
    def ok(self) -> bool:
        return not self.damage


@dataclass(frozen=True, slots=True)
class Records:
    """What the doctor reads: the run store, the KB, the ledger, and for the file
    store the consumption journal's directory."""

    runs: RunStore
    kb: KnowledgeBase
    ledger: LedgerReader
    journal_dir: Path | None = None


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
    journal = 0
    if records.journal_dir is not None:
        journal, found = await anyio.to_thread.run_sync(journal_damage, records.journal_dir)
        damage += found
    entries, found = await _ledger(records)
    damage += found
    return DoctorReport(
        runs=len(scan.runs) + len(scan.unreadable),
        kb_docs=len(kb_ids),
        requests=requests,
        journal=journal,
        ledger_entries=entries,
        damage=tuple(damage),
    )


async def _ledger(records: Records) -> tuple[int, list[Damage]]:
    from cutter.anchoring import verify_ledger

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


def journal_damage(root: Path) -> tuple[int, list[Damage]]:
    """Every record of the file store's consumption journal that does not decode or
    does not sit under the name of the approval it names."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return 0, []
    found: list[Damage] = []
    count = 0
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        count += 1
        path = root / name
        try:
            record = msgspec.json.decode(path.read_bytes(), type=ConsumedApproval)
            if journal_name(record.approval_kb_id) != name:
                raise CorruptRecord(str(path), f"names {record.approval_kb_id[:60]!r}")
        except (msgspec.DecodeError, UnicodeDecodeError, InvalidIdentifier) as exc:
            reason = f"corrupt record {path}: {one_line(str(exc), 200)}"
            found.append(
                Damage(kind="journal", where=str(path), code="E_CORRUPT_RECORD", reason=reason)
            )
        except CorruptRecord as exc:
            found.append(Damage(kind="journal", where=str(path), code=exc.code, reason=exc.message))
    return count, found


def describe_report(report: DoctorReport) -> list[str]:
    lines = [
        f"checked: {report.runs} runs, {report.kb_docs} KB docs, {report.requests} gate "
        f"requests, {report.journal} consumption records, {report.ledger_entries} ledger entries"
    ]
    lines += [f"DAMAGED {d.kind} {d.where}: {d.code}: {d.reason}" for d in report.damage]
    lines.append("all records readable" if report.ok else f"{len(report.damage)} damaged")
    return lines


async def examine_stores(state_dir: Path, dsn: str | None) -> DoctorReport:
    """The doctor on the embedded stores under ``state_dir``, or on PostgreSQL."""
    if dsn is None:
        return await _files(state_dir)
    return await _database(dsn)


async def _files(state_dir: Path) -> DoctorReport:
    from cutter.errors import InputError
    from cutter.stores.file_target import FileLedger
    from cutter.stores.files import FileKnowledgeBase, FileRunStore

    if not await anyio.Path(state_dir).is_dir():
        raise InputError(f"no state directory {state_dir}")
    runs = state_dir / "runs"
    return await examine(
        Records(
            runs=FileRunStore(runs),
            kb=FileKnowledgeBase(state_dir / "kb"),
            ledger=FileLedger(state_dir / "target" / "ledger"),
            journal_dir=runs / "consumed",
        )
    )


async def _database(dsn: str) -> DoctorReport:
    from cutter.pg.connect import create_pool
    from cutter.pg.records import PgKnowledgeBase, PgRunStore
    from cutter.pg.target import PgLedger

    pool = await create_pool(dsn, min_size=0, max_size=1)
    try:
        return await examine(
            Records(runs=PgRunStore(pool), kb=PgKnowledgeBase(pool), ledger=PgLedger(pool))
        )
    finally:
        await pool.close()
