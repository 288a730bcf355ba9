"""The stored bytes of every record kind, both ways: one typed decoder per stored
kind, built once, and the encoders every store (memory, SQLite, PostgreSQL) applies
alike, so each refuses what the others do. Decoding failures become
``CorruptRecord`` naming where the bytes came from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from cutter.core.canonical import canonical
from cutter.core.errors import CorruptRecord, one_line
from cutter.core.ids import check_run_id
from cutter.core.kbdocs import KBDoc
from cutter.core.records import Backup, IURow, IUState
from cutter.core.sidecar import SIDECAR_SCHEMA, Sidecar

_encoder = msgspec.json.Encoder()
_kb_decoder: msgspec.json.Decoder[KBDoc] = msgspec.json.Decoder(KBDoc)
_sidecar_decoder = msgspec.json.Decoder(Sidecar)
_backup_decoder = msgspec.json.Decoder(Backup)


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def decode_kb_doc(data: bytes, location: str) -> KBDoc:
    try:
        return _kb_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(location, one_line(str(exc))) from exc


def decode_stored_sidecar(data: bytes, run_id: str, location: str) -> Sidecar:
    """The sidecar stored under ``run_id``; the record of another run there is corrupt
    (a store must never answer for one run with another's state)."""
    sidecar = decode_sidecar(data, location)
    if sidecar.run_id != run_id:
        raise CorruptRecord(location, f"holds run {sidecar.run_id[:60]!r}")
    return sidecar


def decode_sidecar(data: bytes, location: str) -> Sidecar:
    """A sidecar of this cutter's schema; any other schema is ``CorruptRecord`` too (its
    fields may mean something else)."""
    try:
        sidecar = _sidecar_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(location, one_line(str(exc))) from exc
    if sidecar.schema != SIDECAR_SCHEMA:
        raise CorruptRecord(location, f"schema {sidecar.schema}, not {SIDECAR_SCHEMA}")
    return sidecar


def encode_kb_doc(kb_id: str, doc: KBDoc) -> bytes:
    """The stored bytes of ``doc``; refuses (``CorruptRecord``) what ``get`` could not read."""
    data = encode(doc)
    decode_kb_doc(data, f"{kb_id} (refused, not written)")
    return data


def encode_sidecar(sidecar: Sidecar) -> bytes:
    """The stored bytes of ``sidecar``; refuses what ``load`` could not read."""
    run_id = check_run_id(sidecar.run_id)
    data = encode(sidecar)
    decode_sidecar(data, f"run {run_id} (refused, not written)")
    return data


# IUState(text) costs more than the rest of a row together; verify reads 10,000 rows.
_STATES: dict[str, IUState] = {s.value: s for s in IUState}


def encode_backup(backup: Backup) -> bytes:
    """The stored bytes of ``backup`` in every database store: its canonical encoding
    (the bytes its id digests, so one id has one content)."""
    return canonical(backup)


def decode_backup(payload: bytes, backup_id: str) -> Backup:
    """The backup stored under ``backup_id``: any JSON encoding of it (SQLite wrote the
    canonical one, PostgreSQL msgspec's plain one, before ``encode_backup``); bytes that
    are not a backup, or are another backup, are ``CorruptRecord``."""
    location = f"backups/{backup_id}"
    try:
        backup = _backup_decoder.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CorruptRecord(location, one_line(str(exc))) from exc
    if backup.backup_id != backup_id:
        raise CorruptRecord(location, "payload does not match its id")
    return backup


def row_from_record(record: Iterable[Any]) -> IURow:
    """An ``ius`` row as read from either database: the twelve columns of
    ``cutter.stores.pg.queries.IU_COLUMNS``, in that order (unpacked by position, half the
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
    """A row as the twelve columns of ``cutter.stores.pg.queries.IU_COLUMNS``, in order, for
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
