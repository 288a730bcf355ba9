"""Records of the target store: source versions, candidates, the cut plan, IU rows, backups.

All frozen msgspec Structs; ``forbid_unknown_fields`` where a value is read back
from storage, so a stored record from another format fails loudly. None is tracked
by the garbage collector (``gc=False``): their fields are strings, numbers, bytes
and tuples of records, which cannot form a cycle, and a cut of 10,000 IUs makes
tens of thousands of them (plans, rows written, rows read back), each of which
would otherwise count towards the next collection.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from cutter.core.canonical import digest, sha256_hex


class Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Base of every stored record."""


class SourceVersion(Record, frozen=True, kw_only=True):
    doc_id: str
    sd_id: str
    sv_id: str
    sha256: str
    size: int


class Candidate(Record, frozen=True, kw_only=True):
    """A boundary a discoverer found: a labelled byte region of the source.

    ``label`` is the heading as written; ``number`` its normalised form (``44``,
    ``12a``, ``88-1``) when it has one; ``path`` the enclosing structure, outermost
    first (e.g. ``("Phần thứ nhất", "Chương I", "Mục 1")``)."""

    label: str
    start: int
    end: int
    kind: str = "unit"  # "unit", "preamble" or "trailer"
    number: str | None = None
    path: tuple[str, ...] = ()


class PlannedIU(Record, frozen=True, kw_only=True):
    iu_id: str
    ordinal: int
    label: str
    kind: str
    start: int
    end: int
    region_sha: str
    number: str | None = None
    path: tuple[str, ...] = ()


class Manifest(Record, frozen=True, kw_only=True):
    """The cut plan: the ordered IUs that tile one source version."""

    doc_id: str
    sv_id: str
    source_sha: str
    source_size: int
    ius: tuple[PlannedIU, ...]

    @property
    def digest(self) -> str:
        return digest(self)


class IUState(enum.StrEnum):
    STAGED = "staged"
    ACTIVE = "active"
    SUPERSEDED = "superseded"


class IURow(Record, frozen=True, kw_only=True):
    iu_id: str
    doc_id: str
    sv_id: str
    ordinal: int
    label: str
    kind: str
    start: int
    end: int
    region_sha: str
    body: bytes  # the region's exact bytes, whatever they hold
    state: IUState
    change_set_id: str


class Backup(Record, frozen=True, kw_only=True):
    """Every IU row of a document as it was before a cut, to roll back to."""

    doc_id: str
    rows: tuple[IURow, ...]

    @property
    def backup_id(self) -> str:
        return "bk-" + digest(self)[:32]


class BackupInfo(Record, frozen=True, kw_only=True):
    """A stored backup as ``cutter backups`` lists it: its rows counted, not carried."""

    backup_id: str
    doc_id: str
    rows: int
    active: int  # of ``rows``, how many were active: what a restore makes active again
    saved_at: datetime

    @classmethod
    def of(cls, backup: Backup, saved_at: datetime) -> BackupInfo:
        active = sum(1 for r in backup.rows if r.state is IUState.ACTIVE)
        return cls(
            backup_id=backup.backup_id,
            doc_id=backup.doc_id,
            rows=len(backup.rows),
            active=active,
            saved_at=saved_at,
        )


class WriterGrants(Record, frozen=True, kw_only=True):
    writer: str
    grants: tuple[str, ...]  # sorted

    @property
    def writer_digest(self) -> str:
        return digest(self)


# The privileges a grant probe reports: every (table, privilege) pair of the
# target tables, named "<table>:<privilege>".
GRANT_TABLES: dict[str, str] = {
    "backup": "backups",
    "document": "documents",
    "iu": "ius",
    "ledger": "ledger",
    "source": "source_versions",
}
GRANT_PRIVILEGES: tuple[str, ...] = ("select", "insert", "update", "delete", "truncate")

# What a writer must hold to cut: no more, no less. The ledger is append-only
# (no update, delete or truncate), and so are backups; rollback deletes the cut's
# IU rows.
REQUIRED_GRANTS: tuple[str, ...] = (
    "backup:insert",
    "backup:select",
    "document:select",
    "iu:delete",
    "iu:insert",
    "iu:select",
    "iu:update",
    "ledger:insert",
    "ledger:select",
    "source:select",
    "source:update",
)


def region_sha(data: bytes, start: int, end: int) -> str:
    return sha256_hex(data[start:end])


def iu_id_for(doc_id: str, label: str, occurrence: int) -> str:
    """Stable id: the same document and label give the same id across versions."""
    return "iu-" + sha256_hex(f"{doc_id}\x00{label}\x00{occurrence}".encode())[:32]
