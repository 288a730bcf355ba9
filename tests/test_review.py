"""The review diff and the drift naming (pure): how units are matched and what
"changed", "moved", "appeared" and "vanished" mean (docs/gates.md)."""

from __future__ import annotations

import msgspec

from cutter.core.canonical import sha256_hex
from cutter.core.plan import build_manifest, staged_rows
from cutter.core.records import Candidate, Manifest, SourceVersion
from cutter.core.review import (
    DriftChange,
    Region,
    UnitChange,
    diff_units,
    first_line,
    named_units,
    plan_drift,
    regions_of_plan,
    staged_drift,
    version_drift,
)


def regions(*units: tuple[str, str]) -> tuple[Region, ...]:
    """(label, body) pairs in order."""
    return tuple(
        Region(label=label, ordinal=i, size=len(body), region_sha=sha256_hex(body.encode()))
        for i, (label, body) in enumerate(units)
    )


def labels(changes: tuple[UnitChange, ...]) -> list[str]:
    return [c.label for c in changes]


def test_same_units_are_unchanged_and_edits_are_changed_whatever_the_sizes() -> None:
    before = regions(("A1", "one"), ("A2", "two"), ("A3", "three"))
    after = regions(("A1", "one"), ("A2", "two, amended"), ("A3", "three"))
    diff = diff_units(before, after)
    assert labels(diff.changed) == ["A2"]
    assert (diff.added, diff.removed, diff.moved, diff.unchanged) == ((), (), (), 2)
    assert (diff.bytes_before, diff.bytes_after) == (11, 20)
    [change] = diff.changed
    assert (change.before_size, change.after_size) == (3, 12)


def test_an_insertion_moves_nothing_and_a_unit_moved_to_the_front_is_one_move() -> None:
    before = regions(("A1", "1"), ("A2", "2"), ("A3", "3"), ("A4", "4"))
    inserted = diff_units(before, regions(("A0", "0"), *[(f"A{i}", str(i)) for i in range(1, 5)]))
    assert labels(inserted.added) == ["A0"]
    assert (inserted.moved, inserted.unchanged) == ((), 4)
    moved = diff_units(before, regions(("A4", "4"), ("A1", "1"), ("A2", "2"), ("A3", "3")))
    assert labels(moved.moved) == ["A4"]
    assert (moved.moved[0].before_ordinal, moved.moved[0].after_ordinal) == (3, 0)
    assert moved.unchanged == 3
    swapped = diff_units(before, regions(("A2", "2"), ("A1", "1"), ("A3", "3"), ("A4", "4")))
    assert len(swapped.moved) == 1
    assert swapped.unchanged == 3


def test_units_match_by_label_and_occurrence_and_a_renamed_heading_is_removed_and_added() -> None:
    before = regions(("Section 1", "a"), ("Section 1", "b"), ("Old", "x"))
    after = regions(("Section 1", "a"), ("Section 1", "b, edited"), ("New", "x"))
    diff = diff_units(before, after)
    [changed] = diff.changed
    assert (changed.label, changed.occurrence) == ("Section 1", 1)
    assert labels(diff.removed) == ["Old"]
    assert labels(diff.added) == ["New"]
    assert diff.unchanged == 1


def test_against_nothing_every_unit_is_added() -> None:
    diff = diff_units((), regions(("A1", "1"), ("A2", "2")))
    assert labels(diff.added) == ["A1", "A2"]
    assert diff.unchanged == 0


def _manifest(data: bytes) -> Manifest:
    cands = [
        Candidate(label="A1", start=0, end=4),
        Candidate(label="A2", start=4, end=8),
        Candidate(label="A3", start=8, end=12),
    ]
    version = SourceVersion(
        doc_id="d", sd_id="sd", sv_id="sv", sha256=sha256_hex(data), size=len(data)
    )
    return build_manifest(version, data, cands)


def test_plan_drift_names_changed_vanished_and_appeared_bytes() -> None:
    data = b"aaa\nbbb\nccc\n"
    manifest = _manifest(data)
    assert plan_drift(manifest, data) == ()
    assert plan_drift(manifest, b"aaa\nbXb\nccc\n") == (("A2", DriftChange.CHANGED),)
    assert plan_drift(manifest, b"aaa\nbbb\n") == (("A3", DriftChange.VANISHED),)
    assert plan_drift(manifest, data + b"!") == (("bytes after 12", DriftChange.APPEARED),)
    assert [c for _, c in plan_drift(manifest, None)] == [DriftChange.VANISHED] * 3


def test_version_drift_names_the_units_a_new_version_changes_not_the_ones_it_shifts() -> None:
    manifest = _manifest(b"aaa\nbbb\nccc\n")
    # b"bbb" grows: A3 moves by two bytes but keeps its bytes, so only A2 changed.
    grown = regions(("A1", "aaa\n"), ("A2", "bbXXb\n"), ("A3", "ccc\n"))
    assert version_drift(manifest, grown) == (("A2", DriftChange.CHANGED),)
    reshaped = regions(("A1", "aaa\n"), ("A3", "ccc\n"), ("A4", "ddd\n"))
    assert version_drift(manifest, reshaped) == (
        ("A4", DriftChange.APPEARED),
        ("A2", DriftChange.VANISHED),
    )
    assert version_drift(manifest, regions_of_plan(manifest.ius)) == ()
    assert [c for _, c in version_drift(manifest, None)] == [DriftChange.VANISHED] * 3


def test_staged_drift_names_rows_that_differ_from_the_plan() -> None:
    data = b"aaa\nbbb\nccc\n"
    manifest = _manifest(data)
    rows = staged_rows(manifest, data, "cs-1")
    assert staged_drift(manifest, rows) == ()
    edited = [rows[0], msgspec.structs.replace(rows[1], body=b"bXb\n"), rows[2]]
    assert staged_drift(manifest, edited) == (("A2", DriftChange.CHANGED),)
    extra = msgspec.structs.replace(rows[2], iu_id="iu-extra", label="A9")
    assert staged_drift(manifest, [rows[0], rows[1], extra]) == (
        ("A3", DriftChange.VANISHED),
        ("A9", DriftChange.APPEARED),
    )


def test_first_line_skips_blank_lines_and_is_cut_to_length() -> None:
    assert first_line(b"\n\n  Article 3  Scope\nbody") == "Article 3 Scope"
    assert first_line(b"") == ""
    assert first_line(b"\xff\xfe bad") == "\ufffd\ufffd bad"
    long = first_line(b"x" * 200)
    assert (len(long), long[-1]) == (80, "…")


def test_named_units_says_how_many_more() -> None:
    assert named_units(["a", "b"]) == "a, b"
    assert named_units([str(i) for i in range(8)]) == "0, 1, 2, 3, 4 and 3 more"
