"""What an open gate authorises, as values a reviewer reads (pure).

``unit_views`` lists the planned units with their first line; ``diff_units``
compares the units a cut makes with the document's active IUs; ``plan_drift``,
``version_drift`` and ``staged_drift`` name the units a drift stop is about. See docs/gates.md
("What a reviewer sees") for how units are matched and what "changed" and
"moved" mean.

Units are matched by label and occurrence: the n-th unit labelled ``Article 3``
before is the n-th unit labelled ``Article 3`` after (the same key makes the same
``iu_id``, ``cutter.core.records.iu_id_for``). A matched unit is *changed* when its
bytes differ (its ``region_sha``), *moved* when its bytes are the same but it
left the longest run of matched units that kept their order (so one unit moved
to the front is one move, not every unit after it), and unchanged otherwise.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec

from cutter.core.canonical import sha256_hex
from cutter.core.records import Candidate, IURow, IUState, Manifest, PlannedIU

FIRST_LINE_CHARS = 80
NAMES_SHOWN = 5  # units named in a one-line stop message before "and N more"


class Value(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class UnitView(Value, frozen=True, kw_only=True):
    """One unit as a reviewer sees it."""

    ordinal: int
    label: str
    kind: str
    number: str | None
    path: tuple[str, ...]
    start: int
    end: int
    size: int
    region_sha: str
    first_line: str


class UnitChange(Value, frozen=True, kw_only=True):
    """One unit the cut adds, removes, changes or moves; ``None`` on the side it is absent."""

    label: str
    occurrence: int  # 0 for the first unit with this label
    before_ordinal: int | None
    after_ordinal: int | None
    before_size: int | None
    after_size: int | None


class UnitDiff(Value, frozen=True, kw_only=True):
    """The units a cut makes against the document's active IUs."""

    added: tuple[UnitChange, ...]
    removed: tuple[UnitChange, ...]
    changed: tuple[UnitChange, ...]
    moved: tuple[UnitChange, ...]
    unchanged: int
    bytes_before: int
    bytes_after: int


class PhaseResult(Value, frozen=True, kw_only=True):
    phase: str
    passed_at: datetime
    note: str


class Region(Value, frozen=True, kw_only=True):
    """What the diff compares of a unit."""

    label: str
    ordinal: int
    size: int
    region_sha: str


class ChangeSetView(Value, frozen=True, kw_only=True):
    """What lifecycle_enact does: ``activate`` becomes active, ``retire`` superseded.
    ``staged`` is False for a dry run, whose rows were never written: ``activate``
    is then the rows leg A would have staged, from the plan. Rows are listed by
    ordinal, label, size and region sha: their text is in ``units``."""

    change_set_id: str
    staged: bool
    activate: tuple[Region, ...]
    retire: tuple[Region, ...]


class DriftChange(enum.StrEnum):
    CHANGED = "changed"
    APPEARED = "appeared"
    VANISHED = "vanished"


def first_line(body: bytes, limit: int = FIRST_LINE_CHARS) -> str:
    """The first line of ``body`` with text on it, decoded leniently, cut to ``limit``."""
    for raw in body.splitlines():
        line = " ".join(raw.decode("utf-8", errors="replace").split())
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def unit_views(ius: Iterable[PlannedIU], data: bytes) -> tuple[UnitView, ...]:
    """The planned units of ``data`` (the pinned source bytes)."""
    return tuple(
        UnitView(
            ordinal=iu.ordinal,
            label=iu.label,
            kind=iu.kind,
            number=iu.number,
            path=iu.path,
            start=iu.start,
            end=iu.end,
            size=iu.end - iu.start,
            region_sha=iu.region_sha,
            first_line=first_line(data[iu.start : iu.end]),
        )
        for iu in ius
    )


def active_rows(rows: Iterable[IURow]) -> list[IURow]:
    """The document's active IUs, in order."""
    return sorted((r for r in rows if r.state is IUState.ACTIVE), key=lambda r: r.ordinal)


def regions_of_rows(rows: Iterable[IURow]) -> tuple[Region, ...]:
    return tuple(
        Region(label=r.label, ordinal=r.ordinal, size=len(r.body), region_sha=r.region_sha)
        for r in rows
    )


def regions_of_plan(ius: Iterable[PlannedIU]) -> tuple[Region, ...]:
    return tuple(
        Region(label=i.label, ordinal=i.ordinal, size=i.end - i.start, region_sha=i.region_sha)
        for i in ius
    )


def _keyed(regions: Sequence[Region]) -> dict[tuple[str, int], Region]:
    seen: dict[str, int] = {}
    keyed: dict[tuple[str, int], Region] = {}
    for region in sorted(regions, key=lambda r: r.ordinal):
        occurrence = seen.get(region.label, 0)
        seen[region.label] = occurrence + 1
        keyed[(region.label, occurrence)] = region
    return keyed


def _kept_in_order(positions: Sequence[int]) -> set[int]:
    """Indexes of one longest strictly increasing subsequence of ``positions``."""
    tails: list[int] = []  # positions[tails[k]]: the smallest tail of a run of length k+1
    tail_values: list[int] = []
    previous: list[int] = [-1] * len(positions)
    for index, value in enumerate(positions):
        k = bisect.bisect_left(tail_values, value)
        if k:
            previous[index] = tails[k - 1]
        if k == len(tails):
            tails.append(index)
            tail_values.append(value)
        else:
            tails[k] = index
            tail_values[k] = value
    kept: set[int] = set()
    cursor = tails[-1] if tails else -1
    while cursor != -1:
        kept.add(cursor)
        cursor = previous[cursor]
    return kept


def diff_units(before: Sequence[Region], after: Sequence[Region]) -> UnitDiff:
    """``after`` (the cut) against ``before`` (the active IUs), matched by label and
    occurrence."""
    old, new = _keyed(before), _keyed(after)

    def change(key: tuple[str, int]) -> UnitChange:
        was, now = old.get(key), new.get(key)
        return UnitChange(
            label=key[0],
            occurrence=key[1],
            before_ordinal=None if was is None else was.ordinal,
            after_ordinal=None if now is None else now.ordinal,
            before_size=None if was is None else was.size,
            after_size=None if now is None else now.size,
        )

    matched = [key for key in new if key in old]  # in the new order
    kept = _kept_in_order([old[key].ordinal for key in matched])
    changed: list[UnitChange] = []
    moved: list[UnitChange] = []
    unchanged = 0
    for index, key in enumerate(matched):
        if old[key].region_sha != new[key].region_sha:
            changed.append(change(key))
        elif index not in kept:
            moved.append(change(key))
        else:
            unchanged += 1
    return UnitDiff(
        added=tuple(change(key) for key in new if key not in old),
        removed=tuple(change(key) for key in old if key not in new),
        changed=tuple(changed),
        moved=tuple(moved),
        unchanged=unchanged,
        bytes_before=sum(r.size for r in before),
        bytes_after=sum(r.size for r in after),
    )


def plan_drift(manifest: Manifest, data: bytes | None) -> tuple[tuple[str, DriftChange], ...]:
    """At SG_1: the planned units whose bytes in ``data`` (the source version's bytes
    as stored now) no longer hash to their ``region_sha``; units past the end of
    shortened bytes vanished, bytes past the last unit appeared."""
    if data is None:
        return tuple((iu.label, DriftChange.VANISHED) for iu in manifest.ius)
    named: list[tuple[str, DriftChange]] = []
    for iu in manifest.ius:
        if iu.start >= len(data):
            named.append((iu.label, DriftChange.VANISHED))
        elif sha256_hex(data[iu.start : iu.end]) != iu.region_sha:
            named.append((iu.label, DriftChange.CHANGED))
    if len(data) > manifest.source_size:
        named.append((f"bytes after {manifest.source_size}", DriftChange.APPEARED))
    return tuple(named)


def regions_of_candidates(data: bytes, candidates: Iterable[Candidate]) -> tuple[Region, ...]:
    return tuple(
        Region(
            label=c.label,
            ordinal=ordinal,
            size=c.end - c.start,
            region_sha=sha256_hex(data[c.start : c.end]),
        )
        for ordinal, c in enumerate(candidates)
    )


def version_drift(
    manifest: Manifest, now: Sequence[Region] | None
) -> tuple[tuple[str, DriftChange], ...]:
    """A new version was published: the planned units it changes, the units it adds
    (appeared) and drops (vanished), matched as the review diff matches them (by label
    and occurrence), so an insertion shifts no unit into "changed". ``now`` is None
    when the document is gone."""
    if now is None:
        return tuple((iu.label, DriftChange.VANISHED) for iu in manifest.ius)
    diff = diff_units(regions_of_plan(manifest.ius), now)
    return (
        *((c.label, DriftChange.CHANGED) for c in diff.changed),
        *((c.label, DriftChange.APPEARED) for c in diff.added),
        *((c.label, DriftChange.VANISHED) for c in diff.removed),
    )


def staged_drift(manifest: Manifest, rows: Sequence[IURow]) -> tuple[tuple[str, DriftChange], ...]:
    """At SG_2: the change set's rows that differ from the plan — changed (region,
    label, ordinal or bytes), appeared (no planned unit) or vanished (no row)."""
    by_id = {r.iu_id: r for r in rows}
    planned_ids = {iu.iu_id for iu in manifest.ius}
    named: list[tuple[str, DriftChange]] = []
    for iu in manifest.ius:
        row = by_id.get(iu.iu_id)
        if row is None:
            named.append((iu.label, DriftChange.VANISHED))
            continue
        got = (row.ordinal, row.label, row.start, row.end, row.region_sha)
        want = (iu.ordinal, iu.label, iu.start, iu.end, iu.region_sha)
        if got != want or sha256_hex(row.body) != iu.region_sha:
            named.append((iu.label, DriftChange.CHANGED))
    named.extend((r.label, DriftChange.APPEARED) for r in rows if r.iu_id not in planned_ids)
    return tuple(named)


def named_units(units: Sequence[str], limit: int = NAMES_SHOWN) -> str:
    """``Article 3, Article 7 and 4 more``: a few names on one line."""
    shown = ", ".join(units[:limit])
    rest = len(units) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


class GateReview(Value, frozen=True, kw_only=True):
    """What the open gate of a run authorises (``cutter review``).

    At SG_1: the units the cut makes, the discoverer's warnings and the diff against
    the document's active IUs. At SG_2 also the verify results and the change set
    lifecycle_enact makes active, and the rows it retires. ``notes`` says what could
    not be shown as it was pinned (the source's bytes changed since)."""

    run_id: str
    doc_id: str
    gate: str
    request_digest: str
    source_version_id: str
    source_sha: str
    source_size: int
    units: tuple[UnitView, ...]
    warnings: tuple[str, ...]
    diff: UnitDiff
    verify: tuple[PhaseResult, ...] = ()
    verify_result_id: str | None = None
    change_set: ChangeSetView | None = None
    notes: tuple[str, ...] = ()
