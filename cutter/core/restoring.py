"""A restore run's values and pure checks (docs/revert.md).

A *restore run* puts a document's IU rows back as a stored backup holds them. It
walks the cut's eleven phases and two gates, under the same contracts, with other
phase bodies (``cutter.walk.phases.restoring``). ``cutter revert RUN`` is a restore
run whose backup is RUN's pre-write backup (``cutter.core.revert`` decides whether
RUN may be reverted); ``cutter restore DOC --backup ID`` names the backup itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from cutter.core.canonical import digest, sha256_hex
from cutter.core.errors import InvalidIdentifier
from cutter.core.records import Backup, BackupInfo, IURow, IUState


class RestoreOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a restore run was started to do, on its sidecar: the backup whose rows to
    put back, the run it reverts (None: ``cutter restore``), and for a revert the rows
    the revert guard found (the reverted run's ``rows_after``), which the run's plan
    must start from."""

    backup_id: str
    reverts: str | None = None
    from_rows: str | None = None


class RestorePlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The plan of a restore run, in its cutplan phase doc; its digest is the run's
    ``manifest_digest`` pin, so each gate's request names it."""

    doc_id: str
    sv_id: str  # the document's current version, pinned by source_pin
    from_rows: str  # snapshot id of the document's rows before the restore
    to_backup: str  # the backup restored
    reverts: str | None
    rows: int  # rows in the backup
    active: int  # active rows after the restore

    @property
    def digest(self) -> str:
        return digest(self)


def snapshot_id(doc_id: str, rows: Iterable[IURow]) -> str:
    """The id a backup of exactly these rows (the store's order) would have."""
    return Backup(doc_id=doc_id, rows=tuple(rows)).backup_id


def rows_digest(rows: Sequence[IURow]) -> str:
    """A digest over a backup's rows: a restore run's ``region_sha`` pin."""
    return digest(tuple(rows))


def active_of(rows: Iterable[IURow]) -> list[IURow]:
    return [r for r in rows if r.state is IUState.ACTIVE]


def cut_mark_after(rows: Iterable[IURow], sv_id: str) -> str | None:
    """What the version ``sv_id`` is marked cut by once ``rows`` are the document's:
    the change set of its active rows, when they are all of one; else not cut."""
    change_sets = {r.change_set_id for r in active_of(rows) if r.sv_id == sv_id}
    return change_sets.pop() if len(change_sets) == 1 else None


def verify_result(change_set_id: str, rows_now: str, pre_restore: str, restored: str) -> str:
    """A restore run's ``verify_result_id``: the rows as they stand (``rows_now``, a
    snapshot id), the stored pre-restore backup and the backup to restore, each read
    back and checked against its id. SG_2 takes it again from fresh reads."""
    return digest(["restore-verify", change_set_id, rows_now, pre_restore, restored])


def tiling_problems(rows: Sequence[IURow], sources: Mapping[str, bytes]) -> list[str]:
    """What keeps ``rows`` (a backup to restore) from tiling their source versions: the
    active rows of each version, by ordinal, must be 0, 1, 2, … and cover its bytes
    (``sources``) exactly, each body the bytes of its region and hashing to its
    ``region_sha``."""
    problems: list[str] = []
    by_sv: dict[str, list[IURow]] = {}
    for row in active_of(rows):
        by_sv.setdefault(row.sv_id, []).append(row)
    for sv_id, mine in sorted(by_sv.items()):
        data = sources.get(sv_id)
        if data is None:
            problems.append(f"version {sv_id} of the active rows is not stored")
            continue
        mine.sort(key=lambda r: r.ordinal)
        at = 0
        for expected, row in enumerate(mine):
            where = f"{sv_id}#{row.ordinal}"
            if row.ordinal != expected:
                problems.append(f"{where}: ordinal {row.ordinal}, expected {expected}")
            if row.start != at:
                problems.append(f"{where}: starts at byte {row.start}, expected {at}")
            if row.body != data[row.start : row.end]:
                problems.append(f"{where}: its body is not the bytes of its region")
            if sha256_hex(row.body) != row.region_sha:
                problems.append(f"{where}: its body does not hash to its region_sha")
            at = row.end
        if at != len(data):
            problems.append(f"{sv_id}: the active rows end at byte {at} of {len(data)}")
    return problems


_BACKUP_ID = re.compile(r"bk-[0-9a-f]{32}")


def check_backup_id(value: object) -> str:
    """A backup id as ``Backup.backup_id`` makes them: ``bk-`` and 32 hex digits."""
    if not isinstance(value, str) or not _BACKUP_ID.fullmatch(value):
        shown = repr(value)[:40] if isinstance(value, str) else type(value).__name__
        raise InvalidIdentifier("backup_id", f"{shown} is not bk- and 32 hex digits")
    return value


class SavedBackup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A stored backup of a document and the live runs that saved it (``cutter backups``)."""

    backup: BackupInfo
    saved_by: tuple[str, ...]
