"""Discovery on small documents: heading forms, structure, trailer, stop, warnings, API."""

from __future__ import annotations

import msgspec
import pytest

import cutter.discovery
from cutter.core.ports import Discoverer
from cutter.core.records import Candidate
from cutter.discovery import (
    PROFILES,
    Discovery,
    Profile,
    TextDiscoverer,
    discover,
    infer_profile,
    markdown_profile,
    plain_profile,
)


def units(data: bytes, profile: Profile | None = None) -> list[Candidate]:
    return [c for c in discover(data, profile).candidates if c.kind == "unit"]


def labels(data: bytes, profile: Profile | None = None) -> list[str]:
    return [c.label for c in units(data, profile)]


def body(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("heading", "number"),
    [
        ("Article 12", "12"),
        ("ARTICLE THREE", "3"),
        ("Article twenty-one", "21"),
        ("ARTICLE IV", "4"),
        ("Art. 3", "3"),
        ("Art 5a", "5a"),
        ("Article 88-1", "88-1"),
        ("ARTICLE PREMIER.", "1"),
        ("Article 1er", "1"),
        ("Article 12. Scope", "12"),
        ("Article 12 - Scope", "12"),
        ("Articles 5 and 6", "5..6"),
    ],
)
def test_plain_article_headings(heading: str, number: str) -> None:
    data = body("Preamble.", "", heading, "", "text of it", "", "Article 99", "", "last")
    found = units(data, plain_profile())
    assert [(c.label, c.number) for c in found] == [(heading, number), ("Article 99", "99")]


@pytest.mark.parametrize(
    ("family", "heading", "number"),
    [
        ("section", "Section 4.", "4"),
        ("section", "SECTION 4 - Duties", "4"),
        ("paragraph", "§ 7", "7"),
        ("paragraph", "§ 1 Keine Strafe ohne Gesetz", "1"),
        ("clause", "3. Definitions", "3"),
    ],
)
def test_other_plain_families(family: str, heading: str, number: str) -> None:
    data = body("Title", "", heading, "", "text of it")
    assert [(c.label, c.number) for c in units(data, plain_profile(family))] == [(heading, number)]


def test_inline_references_are_not_headings() -> None:
    data = body(
        "Article 1",
        "",
        "As provided in Article 5, the controller acts.",
        "Article 16(2) TFEU mandates the rules.",
        "Article 8 of the Charter applies.",
        "article 3 applies too.",
        "",
        "Article 2",
        "",
        "text",
    )
    assert labels(data) == ["Article 1", "Article 2"]


def test_a_wrapped_body_line_beginning_with_a_label_is_not_a_heading() -> None:
    data = body(
        "§ 1 Keine Strafe ohne Gesetz",
        "",
        "Eine Tat kann nur bestraft werden, wenn die Strafbarkeit nach",
        "§ 3 Die Vorschriften gelten entsprechend und werden angewandt",
        "§ 3 of the Act applies.",
        "§ 3 Abs. 2 gilt entsprechend.",
        "",
        "§ 2 Zeitliche Geltung",
        "",
        "Die Strafe bestimmt sich nach dem Gesetz.",
    )
    assert labels(data) == ["§ 1 Keine Strafe ohne Gesetz", "§ 2 Zeitliche Geltung"]


def test_preamble_units_and_trailer_tile_the_source() -> None:
    data = body(
        "The charter", "", "Article 1", "one", "", "Article 2", "two", "", "Done at Brussels."
    )
    found = discover(data)
    assert [(c.kind, c.label) for c in found.candidates] == [
        ("preamble", "preamble"),
        ("unit", "Article 1"),
        ("unit", "Article 2"),
        ("trailer", "trailer"),
    ]
    assert b"".join(data[c.start : c.end] for c in found.candidates) == data


def test_a_trailer_line_before_the_last_unit_is_body_text() -> None:
    data = body("Article 1", "", "ANNEX I", "", "Article 2", "", "ANNEX II", "the list")
    found = discover(data)
    assert [c.label for c in found.candidates] == ["Article 1", "Article 2", "trailer"]
    assert data[found.candidates[-1].start :].startswith(b"ANNEX II")


def test_no_heading_is_one_document_unit_with_a_warning() -> None:
    data = b"Just some text\nwithout any heading."
    found = discover(data)
    assert found.candidates == (Candidate(label="document", start=0, end=len(data)),)
    assert found.warnings == ("no unit heading found: the whole document is one unit",)


def test_empty_bytes_give_no_candidate() -> None:
    found = discover(b"")
    assert found.candidates == ()
    assert found.warnings == ("the document is empty: nothing to cut",)


def test_duplicates_gaps_and_backwards_numbers_are_warnings() -> None:
    data = body(*(f"Article {n}\n\ntext" for n in (1, 2, 2, 5, 4)))
    found = discover(data)
    assert [c.number for c in found.candidates] == ["1", "2", "2", "5", "4"]
    assert found.warnings == (
        "duplicate unit number: 2 (line 7) after 2 (line 4)",
        "gap in unit numbers, 3-4 missing: 5 (line 10) after 2 (line 7)",
        "unit number out of order: 4 (line 13) after 5 (line 10)",
    )


# Markdown ------------------------------------------------------------------------


def test_markdown_labelled_headings_at_any_level_with_structure() -> None:
    data = body(
        "# Gesetz",
        "",
        "## Erster Teil",
        "### Erster Abschnitt",
        "#### § 1 Geltung",
        "text",
        "### Zweiter Abschnitt",
        "##### Erster Titel",
        "###### § 2 Begriffe",
        "text",
        "#### § 3 Ende ##",
        "text",
    )
    found = units(data)
    assert [(c.label, c.number) for c in found] == [
        ("§ 1 Geltung", "1"),
        ("§ 2 Begriffe", "2"),
        ("§ 3 Ende", "3"),
    ]
    assert [c.path for c in found] == [
        ("Erster Teil", "Erster Abschnitt"),
        ("Erster Teil", "Zweiter Abschnitt", "Erster Titel"),
        ("Erster Teil", "Zweiter Abschnitt"),
    ]
    assert infer_profile(data).name == "markdown"


def test_markdown_subheadings_below_the_units_stay_inside() -> None:
    data = body("# Charter", "", "## Section 1.", "### Who", "x", "## Section 2", "y")
    assert labels(data) == ["Section 1.", "Section 2"]


def test_markdown_by_level_when_headings_carry_no_label() -> None:
    data = body("# Guide", "", "## Install", "a", "### Details", "b", "## Use", "c")
    found = units(data)
    assert [c.label for c in found] == ["Install", "Use"]
    assert infer_profile(data) == markdown_profile(2, group_levels=())  # "# Guide": a title


def test_setext_headings() -> None:
    data = body(
        "Rules", "=====", "", "Article 1", "---------", "one", "", "Article 2", "---", "two"
    )
    found = discover(data, markdown_profile())
    assert [(c.kind, c.label, c.path) for c in found.candidates] == [
        ("preamble", "preamble", ()),
        ("unit", "Article 1", ("Rules",)),
        ("unit", "Article 2", ("Rules",)),
    ]


def test_fenced_code_and_front_matter_hold_no_headings() -> None:
    data = body(
        "---", "title: x", "## Art 0", "---", "### Art 1", "```", "### Art 9", "```", "### Art 2"
    )
    assert labels(data) == ["Art 1", "Art 2"]


# Vietnamese ------------------------------------------------------------------------


def test_vietnamese_structure_stop_and_trailer() -> None:
    data = body(
        "LUẬT",
        "Phần thứ nhất",
        "Chương I",
        "QUY ĐỊNH CHUNG",
        "Mục 1. PHẠM VI",
        "Điều 1. Phạm vi điều chỉnh",
        "Mục đích của luật này.",
        "Điều cấm của luật là …",
        "Điều 2.",
        "quy định tại Điều 1 của Luật này.",
        "Chương II",
        "Điều 3. Hiệu lực",
        "XÁC THỰC VĂN BẢN HỢP NHẤT",
        "#### Điều 3. Quy định chuyển tiếp",
    )
    found = discover(data)
    assert found.profile == "vietnamese"
    assert [(c.kind, c.label, c.path) for c in found.candidates] == [
        ("preamble", "preamble", ()),
        ("unit", "Điều 1. Phạm vi điều chỉnh", ("Phần thứ nhất", "Chương I", "Mục 1")),
        ("unit", "Điều 2.", ("Phần thứ nhất", "Chương I", "Mục 1")),
        ("unit", "Điều 3. Hiệu lực", ("Phần thứ nhất", "Chương II")),
        ("trailer", "trailer", ()),
    ]
    assert found.warnings == (
        "1 unit headings after the stop line 13 ('XÁC THỰC VĂN BẢN HỢP NHẤT') "
        "are not units: lines 14",
    )


def test_table_of_contents_opens_no_structure() -> None:
    data = body(
        "CHAPTER I: General",
        "CHAPTER II: Rules",
        "CHAPTER III: End",
        "",
        "Article 1",
        "x",
        "CHAPTER I",
        "Article 2",
        "y",
    )
    assert [c.path for c in units(data)] == [(), ("CHAPTER I",)]


# Exact bytes -------------------------------------------------------------------------


def test_crlf_bom_nfd_nbsp_and_stray_bom_do_not_change_what_is_found() -> None:
    plain = "Điều 1. Phạm vi\nnội dung\n\nĐiều 2. Đối tượng\nnội dung"
    messy = (
        "\ufeff"
        + plain.replace("Điều 2", "Đie\u0302\u0300u\xa02").replace("\n", "\r\n")
        + "\r\n\ufeffĐiều 3.\r\nx"
    )
    clean = discover(plain.encode() + "\n\nĐiều 3.\nx".encode())
    data = messy.encode()
    found = discover(data)
    assert [(c.label, c.number) for c in found.candidates] == [
        (c.label, c.number) for c in clean.candidates
    ]
    assert b"".join(data[c.start : c.end] for c in found.candidates) == data
    assert found.candidates[0].start == 0  # the BOM belongs to the first heading's region
    assert data[found.candidates[1].start :].startswith("Đie\u0302\u0300u".encode())


def test_undecodable_bytes_round_trip() -> None:
    data = b"Article 1\n\xff\xfe body\n\nArticle 2. \xc3\n\nmore\xe2\x82"
    found = discover(data, plain_profile())
    assert [c.label for c in found.candidates] == ["Article 1", "Article 2. \ufffd"]
    assert b"".join(data[c.start : c.end] for c in found.candidates) == data
    msgspec.json.encode(found)  # labels hold no lone surrogates


def test_a_heading_on_the_last_line_without_newline() -> None:
    data = b"intro\nArticle 1\nx\nArticle 2"
    found = discover(data)
    assert [(c.label, c.start, c.end) for c in found.candidates] == [
        ("preamble", 0, 6),
        ("Article 1", 6, 18),
        ("Article 2", 18, 27),
    ]


# Profiles and the API ------------------------------------------------------------------


def test_custom_profile() -> None:
    profile = Profile(
        name="rules",
        unit=r"(?i)^rule (?P<num>\d+)$",
        groups=(r"^(?P<label>Part [A-Z])\b",),
        trailer=r"^Signed",
    )
    data = body(
        "Rulebook", "Part A - basics", "RULE 1", "x", "Rule 2", "Part B", "rule 3", "Signed."
    )
    found = discover(data, profile)
    assert found.profile == "rules"
    assert [(c.label, c.number, c.path) for c in found.candidates] == [
        ("preamble", None, ()),
        ("RULE 1", "1", ("Part A",)),
        ("Rule 2", "2", ("Part A",)),
        ("rule 3", "3", ("Part B",)),
        ("trailer", None, ()),
    ]


def test_a_pattern_is_applied_to_one_line() -> None:
    profile = Profile(name="lines", unit=r"^Article\s+(?P<num>\d+)\s*")
    data = body("Article", "5 is cited", "", "Article 6  ", "x")
    assert labels(data, profile) == ["Article 6"]


def test_numbered_backreferences_are_refused() -> None:
    with pytest.raises(ValueError, match="backreferences"):
        discover(b"x\n", Profile(name="bad", unit=r"^(a)\1"))


def test_profiles_and_their_decoding() -> None:
    assert sorted(PROFILES) == ["markdown", "plain", "vietnamese"]
    assert all(profile.name == name for name, profile in PROFILES.items())
    raw = msgspec.json.encode(PROFILES["vietnamese"])
    assert msgspec.json.decode(raw, type=Profile) == PROFILES["vietnamese"]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "x", "unit": "^x", "level": 2}, Profile)


def test_text_discoverer_is_a_discoverer() -> None:
    discoverer: Discoverer = TextDiscoverer()
    data = body("Article 1", "x")
    assert tuple(discoverer.discover(data)) == discover(data).candidates
    assert isinstance(TextDiscoverer().explain(data), Discovery)


def test_public_api_is_sorted_and_real() -> None:
    exported = list(cutter.discovery.__all__)
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    assert all(getattr(cutter.discovery, name) is not None for name in exported)
