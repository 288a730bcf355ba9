"""The stored bytes of the orchestrator's records, the KB's prefix rule, and an IU row
read back from a database: what every store (memory, SQLite, PostgreSQL) applies alike,
so each refuses what the others do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cutter import codec
from cutter.errors import CorruptRecord
from cutter.ids import check_run_id
from cutter.kbdocs import KBDoc
from cutter.records import IURow, IUState
from cutter.sidecar import Sidecar


def encode_kb_doc(kb_id: str, doc: KBDoc) -> bytes:
    """The stored bytes of ``doc``; refuses (``CorruptRecord``) what ``get`` could not read."""
    data = codec.encode(doc)
    codec.decode_kb_doc(data, f"{kb_id} (refused, not written)")
    return data


def encode_sidecar(sidecar: Sidecar) -> bytes:
    """The stored bytes of ``sidecar``; refuses what ``load`` could not read."""
    run_id = check_run_id(sidecar.run_id)
    data = codec.encode(sidecar)
    codec.decode_sidecar(data, f"run {run_id} (refused, not written)")
    return data


def under_prefix(kb_id: str, prefix: str) -> bool:
    """``list`` semantics: the prefix doc itself and every doc below it ("" is all)."""
    return not prefix or kb_id == prefix or kb_id.startswith(prefix + "/")


# IUState(text) costs more than the rest of a row together; verify reads 10,000 rows.
_STATES: dict[str, IUState] = {s.value: s for s in IUState}


def row_from_record(record: Iterable[Any]) -> IURow:
    """An ``ius`` row as read from either database: the twelve columns of
    ``cutter.pg.queries.IU_COLUMNS``, in that order (unpacked by position, half the
    cost of twelve lookups by name); a value no row can hold is ``CorruptRecord``."""
    (
        doc_id,
        sv_id,
        ordinal,
        iu_id,
        label,
        kind,
        start_byte,
        end_byte,
        region_sha,
        body,
        state_text,
        change_set_id,
    ) = record
    state = _STATES.get(state_text)
    try:
        return IURow(
            iu_id=iu_id,
            doc_id=doc_id,
            sv_id=sv_id,
            ordinal=ordinal,
            label=label,
            kind=kind,
            start=start_byte,
            end=end_byte,
            region_sha=region_sha,
            body=bytes(body),
            state=IUState(state_text) if state is None else state,
            change_set_id=change_set_id,
        )
    except ValueError as exc:
        raise CorruptRecord(f"ius/{doc_id}/{sv_id}/{ordinal}", str(exc)) from exc


def row_values(row: IURow) -> tuple[object, ...]:
    """A row as the twelve columns of ``cutter.pg.queries.IU_COLUMNS``, in order, for
    either database. The state goes as the ``IUState`` itself: a ``StrEnum`` is a
    ``str`` whose text is its value, which asyncpg and sqlite3 both send as text
    (``.value`` is an enum property, 40% of this function)."""
    return (
        row.doc_id,
        row.sv_id,
        row.ordinal,
        row.iu_id,
        row.label,
        row.kind,
        row.start,
        row.end,
        row.region_sha,
        row.body,
        row.state,
        row.change_set_id,
    )
