"""What every database IU store checks of a batch before any SQL runs: the ids, and
that no key repeats with another region; a refused batch writes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from cutter.core.errors import CorruptRecord, StopVerifyFailed
from cutter.core.ids import check_doc_id
from cutter.core.records import Backup, IURow


def check_batch(rows: Sequence[IURow]) -> list[IURow]:
    """``rows`` as a list, once every ``doc_id`` is a valid id (else
    ``InvalidIdentifier``) and no ``(doc_id, sv_id, ordinal)`` repeats with another
    change set or region (else ``StopVerifyFailed``, as a row already stored with
    another change set or region is); an exact repeat is one row."""
    batch = list(rows)
    seen: dict[tuple[str, str, int], tuple[str, str]] = {}
    for row in batch:
        check_doc_id(row.doc_id)
        held = seen.setdefault(
            (row.doc_id, row.sv_id, row.ordinal), (row.change_set_id, row.region_sha)
        )
        if held != (row.change_set_id, row.region_sha):
            raise taken_row(row, held[0])
    return batch


def taken_row(row: IURow, held_by: str) -> StopVerifyFailed:
    """The refusal of ``row`` whose key holds another region, of change set ``held_by``."""
    return StopVerifyFailed(
        f"IU {row.doc_id}/{row.sv_id}#{row.ordinal} belongs to change set {held_by}"
    )


def check_restore(backup: Backup) -> str:
    """The document ``backup`` restores, once its id is valid and every row is its own."""
    doc_id = check_doc_id(backup.doc_id)
    if any(row.doc_id != doc_id for row in backup.rows):
        raise CorruptRecord(f"backup {backup.backup_id}", "holds rows of another document")
    return doc_id
