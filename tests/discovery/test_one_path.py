"""One cut for the same bytes, whichever way in.

``discover(data)``, ``discover(data, infer_profile(data))``, the ``TextDiscoverer``
a run's mark and cutplan phases call (leg A writes the manifest cutplan records,
pinned by its digest) and ``cutter plan`` must give the same candidates, profile
and warnings for every input; and a numbering warning names two different units,
each at its own line.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cutter.cli.plan import plan_file
from cutter.core.errors import DocumentNotText, StopPlanInvalid
from cutter.core.mode import Mode
from cutter.core.ports import Target
from cutter.core.records import Candidate, Manifest
from cutter.core.route import Phase
from cutter.core.sidecar import Sidecar, amend
from cutter.core.states import RunState
from cutter.discovery import TextDiscoverer, discover, infer_profile, markdown_profile
from cutter.discovery.content import not_text_reason
from cutter.stores.memory.records import InMemoryKnowledgeBase
from cutter.stores.memory.target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.walk.phases import BODIES, PhaseContext, PhaseOutput, Services
from tests._gates import UncheckedGates
from tests._harness import FakeClock

# Heading lines built from the pieces the profiles tell apart: ATX marks (or none, or
# too many), a parenthesised prefix, a family keyword (or a structural one, or none),
# a numeral, and a tail a plain heading may or may not have.
_ATX = st.sampled_from(["", "", "# ", "## ", "### ", "###### ", "####### ", " # ", "#"])
_PREFIX = st.sampled_from(["", "", "() ", "(XXXX) "])
_KEYWORD = st.sampled_from(
    [
        *("Art ", "Art.", "Article ", "ARTICLE ", "Artikel ", "§ ", "§§ ", "Section ", "Sec. "),
        *("Chapter ", "Kapitel ", "Điều ", "Chương ", "Mục ", "Part ", "Title ", "Teil "),
        *("Anhang ", "ANNEX", "Phần thứ ", ""),
    ]
)
_NUMERAL = st.sampled_from(
    ["0", "1", "2", "3", "12a", "IV", "THREE", "4.1", "88-1", "1er", "5 bis", "74a und 75"]
)
_TAIL = st.sampled_from(["", ".", ". Title", " Title", ": Foo", " - Bar", " of the Act", " #"])
_OTHER = st.sampled_from(
    [
        *("", "", "body text", "===", "---", "```", "1. clause", "2. clause", "# Title"),
        *("Done at Rome.", "XÁC THỰC VĂN BẢN HỢP NHẤT", "Luật này đã được Quốc hội thông qua"),
        *("## Annex", "ANNEX I", "\ufeff", "\xa0", "e\u0301"),
    ]
)
_HEADING = st.builds("".join, st.tuples(_ATX, _PREFIX, _KEYWORD, _NUMERAL, _TAIL))
_LINE = st.one_of(_HEADING, _HEADING, _OTHER, st.text(max_size=6))
documents = st.one_of(
    st.builds(
        lambda lines, eol, final: (eol.join(lines) + (eol if final else "")).encode(
            "utf-8", "surrogatepass"
        ),
        st.lists(_LINE, max_size=14),
        st.sampled_from(["\n", "\n", "\r\n"]),
        st.booleans(),
    ),
    st.binary(max_size=200),
)

# The inputs that broke it: an ``Art`` label behind ``()`` counted as the other
# headings' family (so the inferred profile cut it as structure while ``discover``
# reused a scan that cut it as a unit), and a unit at offset 0 reported at the line
# of whichever unit was asked about before it.
ART_AND_SECTION = b"# () Art 0\n# Section 0"
PARAGRAPH_AMONG_ARTS = b"Art 0\n# Art 0\n# () \xc2\xa7 0"
REPEATED = b"Article 1\nArticle 1"
OUT_OF_ORDER = b"Article 1\nArticle 3\nArticle 2"
STOP_FIRST = "XÁC THỰC VĂN BẢN HỢP NHẤT\nĐiều 1. A\nĐiều 2. B".encode()


async def _mark_and_cutplan(data: bytes) -> tuple[tuple[Candidate, ...], Manifest]:
    """The candidates mark records and the manifest cutplan records for ``data``,
    over in-memory stores and the ``TextDiscoverer`` every run uses."""
    sources = InMemorySources()
    sources.seed("doc", data, sv_id="sv-1")
    clock = FakeClock()
    services = Services(
        target=Target(sources=sources, ius=InMemoryIUStore(), ledger=InMemoryLedger()),
        kb=InMemoryKnowledgeBase(),
        discoverer=TextDiscoverer(),
        grants=StaticGrantProbe(),
        clock=clock,
        gates=UncheckedGates(),
    )
    now = clock()
    sidecar = Sidecar(
        run_id="run-one-path",
        doc_id="doc",
        mode=Mode.DRY_RUN,
        started_by="ann",
        created_at=now,
        updated_at=now,
        state=RunState.RUNNING,
    )
    outputs: dict[Phase, PhaseOutput] = {}
    for phase in (Phase.SOURCE_PIN, Phase.MARK, Phase.CUTPLAN):
        out = await BODIES[phase](PhaseContext(sidecar, services))
        sidecar = amend(sidecar, at=clock(), pins={**sidecar.pins, **out.pins})
        outputs[phase] = out
    manifest = outputs[Phase.CUTPLAN].manifest
    assert manifest is not None
    return outputs[Phase.MARK].candidates, manifest


def _regions(manifest: Manifest) -> list[tuple[object, ...]]:
    """What a reviewer reads of each planned IU (the ids depend on the document id)."""
    return [
        (iu.ordinal, iu.label, iu.kind, iu.start, iu.end, iu.region_sha, iu.number, iu.path)
        for iu in manifest.ius
    ]


@settings(max_examples=300, deadline=None)
@given(documents)
@example(ART_AND_SECTION)
@example(PARAGRAPH_AMONG_ARTS)
@example(REPEATED)
@example(b"")
def test_every_way_in_gives_one_cut(data: bytes) -> None:
    found = discover(data)
    assert discover(data, infer_profile(data)) == found
    assert TextDiscoverer().explain(data) == found
    assert tuple(TextDiscoverer().discover(data)) == found.candidates
    reason = not_text_reason(data)
    shown = None
    if reason is not None:  # plan refuses it; a run's review carries the reason first
        with pytest.raises(DocumentNotText):
            plan_file(Path("doc"), data)
        assert found.warnings[0] == reason
    else:
        shown = plan_file(Path("doc"), data)
        assert (shown.profile, shown.warnings) == (found.profile, found.warnings)
    if not found.candidates:
        with pytest.raises(StopPlanInvalid):
            anyio.run(_mark_and_cutplan, data)
        assert shown is None or shown.manifest.ius == ()
        return
    marked, manifest = anyio.run(_mark_and_cutplan, data)
    assert marked == found.candidates
    if shown is not None:
        assert _regions(manifest) == _regions(shown.manifest)


_SEQUENCE = re.compile(
    r"^[^:]+: (?P<n>.+) \(line (?P<a>\d+)\) after (?P<m>.+) \(line (?P<b>\d+)\)$"
)
_AFTER_STOP = re.compile(
    r"^\d+ unit headings after the stop line (?P<stop>\d+) \(.*\) are not units: "
    r"lines (?P<lines>[\d, …]+)$"
)


@settings(max_examples=300, deadline=None)
@given(documents)
@example(ART_AND_SECTION)
@example(REPEATED)
@example(OUT_OF_ORDER)
@example(STOP_FIRST)
def test_a_warning_names_each_unit_at_its_own_line(data: bytes) -> None:
    found = discover(data)
    units = {
        (c.number, data.count(b"\n", 0, c.start) + 1) for c in found.candidates if c.kind == "unit"
    }
    for warning in found.warnings:
        pair = _SEQUENCE.match(warning)
        if pair is not None:
            later, earlier = (pair["n"], int(pair["a"])), (pair["m"], int(pair["b"]))
            assert later[1] > earlier[1], warning
            assert later in units, (warning, units)
            assert earlier in units, (warning, units)
        stopped = _AFTER_STOP.match(warning)
        if stopped is not None:
            lines = [int(n) for n in stopped["lines"].split(", ") if n != "…"]
            assert min(lines) > int(stopped["stop"]), warning


def test_an_art_and_a_section_heading_are_two_units_of_one_level() -> None:
    # One ``Art`` and one ``Section`` heading: no family has the two headings Markdown
    # by label needs, so the document is cut at its one heading level, both units.
    assert infer_profile(ART_AND_SECTION) == markdown_profile(1, group_levels=())
    found = discover(ART_AND_SECTION)
    assert [(c.label, c.number, c.start) for c in found.candidates] == [
        ("() Art 0", "0", 0),
        ("Section 0", "0", 11),
    ]
    assert found.warnings == ("duplicate unit number: 0 (line 2) after 0 (line 1)",)


def test_a_parenthesised_label_counts_for_its_own_family() -> None:
    # One ``# Art`` and one ``# () §`` heading: no Markdown family has two (the ``§``
    # is no ``Art`` for sitting behind ``()``), so plain ``Art`` headings win, the
    # ATX one among them, and the ``§`` line is body text.
    found = discover(PARAGRAPH_AMONG_ARTS)
    assert found.profile == "plain"
    assert [(c.label, c.start, c.end) for c in found.candidates] == [
        ("Art 0", 0, 6),
        ("Art 0", 6, len(PARAGRAPH_AMONG_ARTS)),
    ]


def test_warnings_name_the_line_of_each_unit() -> None:
    # Offset 0 is line 1 however many lines were numbered before it.
    assert discover(REPEATED).warnings == ("duplicate unit number: 1 (line 2) after 1 (line 1)",)
    assert discover(OUT_OF_ORDER).warnings == (
        "gap in unit numbers, 2 missing: 3 (line 2) after 1 (line 1)",
        "unit number out of order: 2 (line 3) after 3 (line 2)",
    )
    assert discover(STOP_FIRST).warnings[0] == (
        "2 unit headings after the stop line 1 ('XÁC THỰC VĂN BẢN HỢP NHẤT') "
        "are not units: lines 2, 3"
    )
