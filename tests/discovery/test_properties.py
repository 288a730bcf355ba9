"""Properties over generated documents: headings in four styles, bodies of random text
(decomposed marks, no-break spaces, stray BOMs, any Unicode), CRLF or LF, a leading
BOM or not, a final newline or not."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from cutter.core.canonical import sha256_hex
from cutter.core.plan import build_manifest, tiling_problems
from cutter.core.records import Manifest, SourceVersion
from cutter.discovery import discover
from cutter.discovery.content import content_warnings

STYLES = ("plain", "plain-title", "markdown", "vietnamese")
TRAILERS = {
    "plain": "Done at Brussels, 27 April 2016.",
    "plain-title": "Done at Brussels, 27 April 2016.",
    "markdown": "## Annex",
    "vietnamese": "Luật này đã được Quốc hội thông qua ngày 29 tháng 6 năm 2006.",
}

text_line = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\n\r"),
    max_size=40,
).map(lambda s: "x " + s)  # a body line never starts like a heading
body_lines = st.lists(text_line, max_size=4)
titles = st.text(alphabet=st.sampled_from("abcdefghij ĐđễàüÄ"), min_size=1, max_size=12).map(
    lambda s: "T" + s.strip()
)


@dataclass(frozen=True)
class Doc:
    style: str
    headings: tuple[str, ...]
    bodies: tuple[tuple[str, ...], ...]
    preamble: tuple[str, ...]
    trailer: bool
    eol: str
    bom: bool
    final_newline: bool

    def render(self) -> bytes:
        lines = list(self.preamble)
        for heading, body in zip(self.headings, self.bodies, strict=True):
            lines += [heading, *body]
        if self.trailer:
            lines.append(TRAILERS[self.style])
        text = self.eol.join(lines) + (self.eol if self.final_newline else "")
        return (("\ufeff" if self.bom else "") + text).encode()


def heading(style: str, number: int, title: str, decomposed: bool, nbsp: bool) -> str:
    space = "\xa0" if nbsp else " "
    text = {
        "plain": f"Article{space}{number}",
        "plain-title": f"Article{space}{number}. {title}",
        "markdown": f"## Section{space}{number}. {title}",
        "vietnamese": f"Điều{space}{number}. {title}",
    }[style]
    return unicodedata.normalize("NFD", text) if decomposed else text


@st.composite
def documents(draw: st.DrawFn) -> Doc:
    style = draw(st.sampled_from(STYLES))
    count = draw(st.integers(min_value=2, max_value=7))
    headings = tuple(
        heading(style, n, draw(titles), draw(st.booleans()), draw(st.booleans()))
        for n in range(1, count + 1)
    )
    return Doc(
        style=style,
        headings=headings,
        bodies=tuple(tuple(draw(body_lines)) for _ in headings),
        preamble=tuple(draw(body_lines)),
        trailer=draw(st.booleans()),
        eol=draw(st.sampled_from(["\n", "\r\n"])),
        bom=draw(st.booleans()),
        final_newline=draw(st.booleans()),
    )


def manifest(data: bytes) -> Manifest:
    version = SourceVersion(
        doc_id="doc", sd_id="sd-doc", sv_id="sv", sha256=sha256_hex(data), size=len(data)
    )
    return build_manifest(version, data, discover(data).candidates)


def normal(heading: str) -> str:
    return " ".join(unicodedata.normalize("NFC", heading).lstrip("# ").split())


@settings(max_examples=150, deadline=None)
@given(documents())
def test_regions_tile_round_trip_and_are_never_empty(doc: Doc) -> None:
    data = doc.render()
    found = discover(data)
    assert tiling_problems([(c.start, c.end) for c in found.candidates], len(data)) == []
    assert b"".join(data[c.start : c.end] for c in found.candidates) == data
    assert all(c.end > c.start for c in found.candidates)


@settings(max_examples=150, deadline=None)
@given(documents())
def test_every_heading_is_found_with_its_label_and_number(doc: Doc) -> None:
    found = discover(doc.render())
    units = [c for c in found.candidates if c.kind == "unit"]
    assert [c.label for c in units] == [normal(h) for h in doc.headings]
    assert [c.number for c in units] == [str(n) for n in range(1, len(doc.headings) + 1)]
    kinds = [c.kind for c in found.candidates]
    assert (kinds[0] == "preamble") == bool(doc.preamble)
    assert (kinds[-1] == "trailer") == doc.trailer
    assert found.warnings == tuple(content_warnings(doc.render()))  # a NUL: said, not cut


@settings(max_examples=150, deadline=None)
@given(documents(), st.data())
def test_editing_one_article_changes_only_its_region_sha(doc: Doc, data: st.DataObject) -> None:
    edited = data.draw(st.integers(min_value=0, max_value=len(doc.headings) - 1))
    new_body = tuple(data.draw(body_lines))
    bodies = tuple(new_body if i == edited else b for i, b in enumerate(doc.bodies))
    before, after = manifest(doc.render()), manifest(replace(doc, bodies=bodies).render())
    assert [iu.iu_id for iu in after.ius] == [iu.iu_id for iu in before.ius]
    assert manifest(doc.render()) == before  # the same bytes, the same plan
    pairs = zip(before.ius, after.ius, strict=True)
    changed = [i for i, (a, b) in enumerate(pairs) if a.region_sha != b.region_sha]
    unit = edited + (1 if doc.preamble else 0)
    assert changed in ([], [unit])
    assert (changed == []) == (
        doc.render()[before.ius[unit].start : before.ius[unit].end]
        == replace(doc, bodies=bodies).render()[after.ius[unit].start : after.ius[unit].end]
    )


fragments = st.sampled_from(
    [
        "Article 1",
        "ARTICLE TWO",
        "## Section 3.",
        "### (XXXX) Art 4a und 5",
        "§ 6 Titel",
        "Điều 7. Tên",
        "Chương I",
        "Mục 2",
        "CHAPTER V",
        "```",
        "---",
        "===",
        "Done at Rome.",
        "XÁC THỰC VĂN BẢN HỢP NHẤT",
        "\ufeff",
        "\xa0",
        "e\u0301",
        "\r",
        "\n",
        "\r\n",
        " ",
        "#",
        "x",
    ]
)
anything = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(fragments, st.text(max_size=8)), max_size=40).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    ),
)


@settings(max_examples=300, deadline=None)
@given(anything, st.sampled_from([None, "markdown", "plain", "vietnamese"]))
def test_any_bytes_are_tiled_exactly(data: bytes, name: str | None) -> None:
    from cutter.discovery import PROFILES, infer_profile

    profile = infer_profile(data) if name is None else PROFILES[name]
    found = discover(data, None if name is None else profile)
    assert found == discover(data, profile)  # one cut, with the profile given or inferred
    assert tiling_problems([(c.start, c.end) for c in found.candidates], len(data)) == []
    assert b"".join(data[c.start : c.end] for c in found.candidates) == data
    assert all(c.end > c.start for c in found.candidates)
    assert found == discover(data, None if name is None else PROFILES[name])
