"""Building and checking a cut plan (pure functions over bytes and records)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cutter.core.canonical import digest, sha256_hex
from cutter.core.errors import StopPlanInvalid
from cutter.core.records import (
    Candidate,
    IURow,
    IUState,
    Manifest,
    PlannedIU,
    SourceVersion,
    iu_id_for,
)


def regions_digest(candidates: Sequence[Candidate]) -> str:
    """One digest over every candidate region (the ``region_sha`` pin of mark)."""
    return digest(tuple(candidates))


def tiling_problems(spans: Sequence[tuple[int, int]], size: int) -> list[str]:
    """Why ``spans`` fail to tile ``[0, size)`` exactly, in order (empty: they tile)."""
    problems: list[str] = []
    if not spans:
        return ["no regions"] if size else []
    cursor = 0
    for index, (start, end) in enumerate(spans):
        if end <= start:
            problems.append(f"region {index} is empty or reversed ({start}..{end})")
        if start > cursor:
            problems.append(f"gap before region {index} ({cursor}..{start})")
        elif start < cursor:
            problems.append(f"region {index} overlaps the previous one at {start}")
        cursor = max(cursor, end)
    if cursor != size:
        problems.append(f"regions end at {cursor}, the source at {size}")
    return problems


def build_manifest(
    version: SourceVersion, data: bytes, candidates: Sequence[Candidate]
) -> Manifest:
    """The ordered IUs of ``candidates``; raises ``StopPlanInvalid`` unless they tile."""
    if sha256_hex(data) != version.sha256:
        raise StopPlanInvalid(f"source bytes do not match version {version.sv_id}")
    problems = tiling_problems([(c.start, c.end) for c in candidates], len(data))
    if problems:
        raise StopPlanInvalid("candidates do not tile the source: " + "; ".join(problems[:3]))
    seen: dict[str, int] = {}
    ius: list[PlannedIU] = []
    for ordinal, cand in enumerate(candidates):
        occurrence = seen.get(cand.label, 0)
        seen[cand.label] = occurrence + 1
        ius.append(
            PlannedIU(
                iu_id=iu_id_for(version.doc_id, cand.label, occurrence),
                ordinal=ordinal,
                label=cand.label,
                kind=cand.kind,
                start=cand.start,
                end=cand.end,
                region_sha=sha256_hex(data[cand.start : cand.end]),
                number=cand.number,
                path=cand.path,
            )
        )
    return Manifest(
        doc_id=version.doc_id,
        sv_id=version.sv_id,
        source_sha=version.sha256,
        source_size=version.size,
        ius=tuple(ius),
    )


def change_set_id_for(run_id: str, manifest_digest: str) -> str:
    """Deterministic from run and manifest, so a replay writes nothing new."""
    return "cs-" + sha256_hex(f"{run_id}\x00{manifest_digest}".encode())[:32]


def staged_rows(manifest: Manifest, data: bytes, change_set_id: str) -> list[IURow]:
    # The names are looked up once, not once per row: 10,000 rows for a large document.
    doc_id, sv_id, staged = manifest.doc_id, manifest.sv_id, IUState.STAGED
    return [
        IURow(
            iu_id=iu.iu_id,
            doc_id=doc_id,
            sv_id=sv_id,
            ordinal=iu.ordinal,
            label=iu.label,
            kind=iu.kind,
            start=iu.start,
            end=iu.end,
            region_sha=iu.region_sha,
            body=data[iu.start : iu.end],
            state=staged,
            change_set_id=change_set_id,
        )
        for iu in manifest.ius
    ]


def structural_problems(manifest: Manifest, rows: Sequence[IURow], data: bytes) -> list[str]:
    """IUs tile the source, their bytes reproduce it, ordinals are dense."""
    problems = tiling_problems([(r.start, r.end) for r in rows], len(data))
    ordinals = [r.ordinal for r in rows]
    if ordinals != list(range(len(rows))):
        problems.append("ordinals are not dense from 0")
    if b"".join(r.body for r in rows) != data:
        problems.append("concatenated IU bodies do not reproduce the source bytes")
    if len(rows) != len(manifest.ius):
        problems.append(f"{len(rows)} IUs written, {len(manifest.ius)} planned")
    return problems


def write_problems(manifest: Manifest, rows: Sequence[IURow]) -> list[str]:
    """Every IU read back equals the plan (ids, labels, regions, shas)."""
    problems: list[str] = []
    if len(rows) != len(manifest.ius):
        problems.append(f"{len(rows)} IUs read back, {len(manifest.ius)} planned")
    sha256 = hashlib.sha256
    for planned, row in zip(manifest.ius, rows, strict=False):
        if (
            row.iu_id != planned.iu_id
            or row.ordinal != planned.ordinal
            or row.label != planned.label
            or row.start != planned.start
            or row.end != planned.end
            or row.region_sha != planned.region_sha
        ):
            problems.append(f"IU {planned.ordinal} differs from the plan")
        elif sha256(row.body).hexdigest() != planned.region_sha:
            problems.append(f"IU {planned.ordinal} body does not hash to its region_sha")
    return problems


def verify_result_id(change_set_id: str, rows: Sequence[IURow]) -> str:
    """Names what write verify saw; recomputed at SG_2 to detect drift in the rows.

    One line per row, ``ordinal<TAB>iu_id<TAB>region_sha<TAB>state`` (the state's
    text: ``str`` of an ``IUState`` is its value), joined by newlines after the change
    set id. Built with ``str.join``, not one f-string per row (twice as fast; 10,000
    rows in write_verify and again at SG_2)."""
    seen = "\n".join(
        ["\t".join((str(r.ordinal), r.iu_id, r.region_sha, str(r.state))) for r in rows]
    )
    return "vr-" + sha256_hex(f"{change_set_id}\n{seen}".encode())[:32]
