"""Ground truth of SOURCES.md for the six documents that have it, one pitfall per test."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import pytest

from cutter.core.records import Candidate
from cutter.discovery import Discovery, discover
from tests.discovery.corpus import (
    CPC,
    GDPR,
    GG,
    US,
    VN_CIVIL_CODE,
    VN_IT_LAW,
    document,
    line_of,
    line_start,
)


@cache
def _found(name: str) -> Discovery:
    return discover(document(name))


def found(name: str) -> Discovery:
    document(name)  # skips or fails first when the corpus is missing
    return _found(name)


def units(name: str) -> list[Candidate]:
    return [c for c in found(name).candidates if c.kind == "unit"]


def kinds(name: str) -> list[str]:
    return [c.kind for c in found(name).candidates]


def holding(name: str, line: int) -> Candidate:
    """The candidate whose region holds the start of 1-based ``line``."""
    offset = line_start(document(name), line)
    return next(c for c in found(name).candidates if c.start <= offset < c.end)


def starts_at(name: str, line: int) -> bool:
    offset = line_start(document(name), line)
    return any(c.start == offset for c in found(name).candidates)


def unit_lines(name: str) -> list[int]:
    data = document(name)
    return [line_of(data, c.start) for c in units(name)]


def numbers(cands: Sequence[Candidate]) -> list[str | None]:
    return [c.number for c in cands]


# GDPR ---------------------------------------------------------------------------


def test_gdpr_has_99_articles_numbered_1_to_99_with_preamble_and_trailer() -> None:
    found_units = units(GDPR)
    assert len(found_units) == 99
    assert numbers(found_units) == [str(n) for n in range(1, 100)]
    assert (found_units[0].label, found_units[-1].label) == ("Article 1", "Article 99")
    assert unit_lines(GDPR)[0] == 731
    assert unit_lines(GDPR)[-1] == 3569
    assert kinds(GDPR)[0] == "preamble"
    assert kinds(GDPR)[-1] == "trailer"
    assert found(GDPR).profile == "plain"
    assert found(GDPR).warnings == ()


def test_gdpr_line_71_article_16_2_tfeu_is_not_a_heading() -> None:
    assert document(GDPR).splitlines()[70].startswith(b"Article 16(2) TFEU")
    assert not starts_at(GDPR, 71)
    assert holding(GDPR, 71).kind == "preamble"


def test_gdpr_inline_article_references_are_not_units() -> None:
    text = document(GDPR).decode()
    assert len(re.findall(r"\bArticles? \d+", text)) > 400
    assert all(re.fullmatch(r"Article \d+", c.label) for c in units(GDPR))


def test_gdpr_article_4_definitions_are_inside_article_4() -> None:
    for line in (793, 857, 921):
        assert holding(GDPR, line).label == "Article 4"
        assert not starts_at(GDPR, line)


def test_gdpr_preamble_holds_title_and_173_recitals() -> None:
    preamble = found(GDPR).candidates[0]
    body = document(GDPR)[preamble.start : preamble.end]
    assert body.startswith(b"REGULATION (EU) 2016/679")
    assert b"\nWhereas:\n" in body
    assert b"\n(173)\n" in body
    assert b"HAVE ADOPTED THIS REGULATION:" in body
    assert preamble.end == line_start(document(GDPR), 731)


def test_gdpr_signatures_and_footnotes_after_article_99_are_the_trailer() -> None:
    trailer = found(GDPR).candidates[-1]
    assert trailer.kind == "trailer"
    assert trailer.start == line_start(document(GDPR), 3579)  # "Done at Brussels, …"
    for line in (3593, 3633):  # the footnotes (1) … (21)
        assert holding(GDPR, line) == trailer
    assert units(GDPR)[-1].end == trailer.start


def test_gdpr_chapters_and_restarting_sections_build_the_path() -> None:
    by_label = {c.label: c for c in units(GDPR)}
    assert by_label["Article 1"].path == ("CHAPTER I",)
    assert by_label["Article 12"].path == ("CHAPTER III", "Section 1")
    assert by_label["Article 99"].path == ("CHAPTER XI",)
    chapters = {c.path[0] for c in units(GDPR)}
    assert len(chapters) == 11
    assert sum(1 for c in units(GDPR) if c.path[1:] == ("Section 1",)) > 4


# US constitution ----------------------------------------------------------------

US_ARTICLES = [
    (12, "Article 1"),
    (280, "ARTICLE 2"),
    (385, "ARTICLE THREE"),
    (427, "ARTICLE FOUR"),
    (468, "ARTICLE FIVE"),
    (483, "ARTICLE SIX"),
    (503, "ARTICLE SEVEN"),
]


def test_us_constitution_has_7_articles_with_inconsistent_labels() -> None:
    assert list(zip(unit_lines(US), [c.label for c in units(US)], strict=True)) == US_ARTICLES
    assert numbers(units(US)) == [str(n) for n in range(1, 8)]
    assert kinds(US) == ["preamble", *["unit"] * 7, "trailer"]
    assert found(US).warnings == ()


def test_us_sections_sharing_their_line_with_the_body_are_not_units() -> None:
    data = document(US)
    lines = data.splitlines()
    sections = [i + 1 for i, line in enumerate(lines) if re.match(rb"Section \d+\.", line)]
    assert len(sections) == 21
    for line in sections:
        assert not starts_at(US, line)
        assert holding(US, line).kind == "unit"


def test_us_wrapped_line_amendments_and_inline_words_are_not_headings() -> None:
    assert document(US).splitlines()[136] == b"Amendments as on other Bills."
    assert holding(US, 137).label == "Article 1"
    assert holding(US, 479).label == "ARTICLE FIVE"  # "the ninth Section of the first Article"


def test_us_signature_block_is_the_trailer() -> None:
    trailer = found(US).candidates[-1]
    assert trailer.start == line_start(document(US), 508)  # "Done in Convention …"
    assert document(US)[trailer.start :].rstrip().endswith(b"William Jackson, Secretary")


# Bộ luật Dân sự -------------------------------------------------------------------


def test_civil_code_has_689_articles() -> None:
    found_units = units(VN_CIVIL_CODE)
    assert len(found_units) == 689
    assert numbers(found_units) == [str(n) for n in range(1, 690)]
    assert found_units[0].label == "Điều 1. Phạm vi điều chỉnh"
    assert found_units[-1].label == "Điều 689. Hiệu lực thi hành"
    assert (unit_lines(VN_CIVIL_CODE)[0], unit_lines(VN_CIVIL_CODE)[-1]) == (30, 5932)
    assert found(VN_CIVIL_CODE).profile == "vietnamese"
    assert found(VN_CIVIL_CODE).warnings == ()


def test_civil_code_line_1214_dieu_cam_is_not_a_heading() -> None:
    assert document(VN_CIVIL_CODE).splitlines()[1213].decode().startswith("Điều cấm")
    assert not starts_at(VN_CIVIL_CODE, 1214)
    assert holding(VN_CIVIL_CODE, 1214).number == "123"


def test_civil_code_line_1178_muc_dich_is_not_a_section() -> None:
    assert document(VN_CIVIL_CODE).splitlines()[1177].decode().startswith("Mục đích")
    assert all("Mục đích" not in part for c in units(VN_CIVIL_CODE) for part in c.path)


def test_civil_code_inline_article_references_are_not_units() -> None:
    text = document(VN_CIVIL_CODE).decode()
    assert len(re.findall(r"(?<!\n)Điều \d+", text)) == 136  # not at a line start
    assert all(re.match(r"Điều \d+\. \S", c.label) for c in units(VN_CIVIL_CODE))


def test_civil_code_levels_nest_part_chapter_section() -> None:
    paths = [c.path for c in units(VN_CIVIL_CODE)]
    assert paths[0] == ("Phần thứ nhất", "Chương I")
    assert len({p[:1] for p in paths}) == 6
    assert len({p[:2] for p in paths if len(p) > 1}) == 27  # Phần thứ sáu has no Chương
    assert len({p[:3] for p in paths if len(p) > 2 and p[2].startswith("Mục")}) == 39
    assert paths[-1] == ("Phần thứ sáu",)


def test_civil_code_adoption_text_and_signature_are_the_trailer() -> None:
    trailer = found(VN_CIVIL_CODE).candidates[-1]
    body = document(VN_CIVIL_CODE)[trailer.start :].decode()
    assert trailer.kind == "trailer"
    assert body.startswith("Bộ luật này đã được Quốc hội")
    assert "CHỦ TỊCH QUỐC HỘI" in body
    assert body.endswith("Nguyễn Sinh Hùng")


# Luật Công nghệ thông tin (consolidated, Markdown) ---------------------------------

HEADLESS = ["13", "24", "29", "34", "38", "42", "61", "65", "67"]


def test_it_law_has_62_body_articles_and_stops_at_the_certification() -> None:
    found_units = units(VN_IT_LAW)
    assert len(found_units) == 62
    assert found_units[0].label == "Điều 1. Phạm vi điều chỉnh"
    assert found_units[-1].label == "Điều 79. Hướng dẫn thi hành"  # its NBSP is a space
    assert (unit_lines(VN_IT_LAW)[0], unit_lines(VN_IT_LAW)[-1]) == (21, 595)
    expected = [n for n in range(1, 80) if str(n) not in HEADLESS and not 47 <= n <= 54]
    assert numbers(found_units) == [str(n) for n in expected]


def test_it_law_appendix_headings_after_the_stop_line_are_the_trailer() -> None:
    trailer = found(VN_IT_LAW).candidates[-1]
    assert trailer.start == line_start(document(VN_IT_LAW), 599)
    for line in (629, 637, 649, 656, 667, 676, 683, 691, 696):
        assert holding(VN_IT_LAW, line) == trailer
    assert any("9 unit headings after the stop line 599" in w for w in found(VN_IT_LAW).warnings)
    # Their numbers (51, 53, 59, 73) repeat body numbers, but they are no units.
    assert not any(w.startswith("duplicate") for w in found(VN_IT_LAW).warnings)


def test_it_law_repealed_placeholders_are_units() -> None:
    by_number = {c.number: c for c in units(VN_IT_LAW)}
    for number in ("10", "58", "59", "76"):
        assert by_number[number].label == f"Điều {number}. (được bãi bỏ)"


def test_it_law_headless_articles_are_a_reported_known_limitation() -> None:
    # The nine articles that lost their heading end the previous article's region.
    warnings = found(VN_IT_LAW).warnings
    for number in HEADLESS:
        assert any(f"gap in unit numbers, {number} missing" in w for w in warnings)
    article_12 = holding(VN_IT_LAW, 142)
    assert article_12.number == "12"
    region = document(VN_IT_LAW)[article_12.start : article_12.end].decode()
    assert "### Mục 1. QUY ĐỊNH CHUNG VỀ ỨNG DỤNG CÔNG NGHỆ THÔNG TIN" in region


def test_it_law_repealed_sections_leave_a_gap_47_to_54() -> None:
    assert any("gap in unit numbers, 47-54 missing" in w for w in found(VN_IT_LAW).warnings)
    assert holding(VN_IT_LAW, 419).number == "46"


def test_it_law_chapter_with_hyperlink_artefact_still_builds_the_path() -> None:
    by_number = {c.number: c for c in units(VN_IT_LAW)}
    assert by_number["78"].path == ("Chương VI",)
    assert by_number["14"].path == ("Chương II", "Mục 1")


def test_it_law_body_lines_starting_with_dieu_nay_are_not_headings() -> None:
    for line in (622, 625, 626, 627):
        assert document(VN_IT_LAW).splitlines()[line - 1].decode().startswith("Điều này")
        assert not starts_at(VN_IT_LAW, line)


# OpenJS CPC charter -----------------------------------------------------------------


def test_cpc_charter_has_12_sections() -> None:
    found_units = units(CPC)
    assert len(found_units) == 12
    assert numbers(found_units) == [str(n) for n in range(1, 13)]
    assert found_units[0].label == "Section 1. Guiding Principle."
    assert found_units[-1].label == "Section 12. Changes to this Document"
    assert (unit_lines(CPC)[0], unit_lines(CPC)[-1]) == (3, 221)
    assert kinds(CPC) == ["preamble", *["unit"] * 12]  # the H1 title is the preamble
    assert found(CPC).profile == "markdown"


def test_cpc_subheadings_are_inside_their_section() -> None:
    data = document(CPC)
    lines = data.splitlines()
    sub = [i + 1 for i, line in enumerate(lines) if line.startswith((b"### ", b"#### "))]
    assert len(sub) == 8
    assert {holding(CPC, line).number for line in sub} == {"4", "7"}


def test_cpc_trailing_periods_do_not_matter() -> None:
    labels = [c.label for c in units(CPC)]
    assert sum(label.endswith(".") for label in labels) == 4


def test_cpc_line_65_inline_section_link_is_not_a_heading() -> None:
    assert b"[Section 7. Elections](#section-7-elections)" in document(CPC).splitlines()[64]
    assert holding(CPC, 65).number == "4"


def test_cpc_numbered_list_lines_are_not_units() -> None:
    lines = [line for line in document(CPC).splitlines() if re.match(rb"\s*\d+\. ", line)]
    assert lines
    assert len(units(CPC)) == 12


# Grundgesetz -------------------------------------------------------------------------


def test_grundgesetz_has_200_articles_plus_the_range_heading() -> None:
    found_units = units(GG)
    assert len(found_units) == 201
    assert (found_units[0].label, found_units[-1].label) == ("Art 1", "Art 146")
    assert (unit_lines(GG)[0], unit_lines(GG)[-1]) == (57, 4246)
    articles = [c for c in found_units if c.label.startswith("Art ")]
    assert len(articles) == 200
    assert len({c.number for c in found_units}) == 201
    assert sum(1 for c in articles if c.number and c.number[-1].isalpha()) == 55
    assert found(GG).warnings == ()


def test_grundgesetz_range_heading_is_one_unit_numbered_as_a_range() -> None:
    unit = holding(GG, 1739)
    assert starts_at(GG, 1739)
    assert unit.label == "(XXXX) Art 74a und 75 (weggefallen)"
    assert unit.number == "74a..75"


def test_grundgesetz_repealed_articles_are_units() -> None:
    labels = {c.number: c.label for c in units(GG)}
    for number in ("49", "59a", "142a"):
        assert labels[number] == f"Art {number} (weggefallen)"


def test_grundgesetz_art_without_period_and_its_one_title() -> None:
    assert document(GG).count(b"\n### Art. ") == 0
    assert "Art 45d Parlamentarisches Kontrollgremium" in [c.label for c in units(GG)]
    assert not starts_at(GG, 4270)  # "… (betroffen: Präambel, Art. 23, …)"


def test_grundgesetz_annex_is_the_trailer_and_its_artikel_lines_are_not_units() -> None:
    trailer = found(GG).candidates[-1]
    assert trailer.kind == "trailer"
    assert trailer.start == line_start(document(GG), 4254)  # "### Anhang EV"
    for line in (4258, 4268, 4271, 4297, 4301):
        assert document(GG).splitlines()[line - 1].startswith(b"Artikel ")
        assert holding(GG, line) == trailer


def test_grundgesetz_chapters_build_the_path() -> None:
    by_number = {c.number: c for c in units(GG)}
    assert by_number["1"].path == ("I. - Die Grundrechte",)
    assert by_number["53a"].path == ("IV a. - Gemeinsamer Ausschuß",)
    assert by_number["146"].path == ("XI. - Übergangs- und Schlußbestimmungen",)


@pytest.mark.parametrize("name", [GDPR, US, VN_CIVIL_CODE, VN_IT_LAW, CPC, GG])
def test_inferred_profile_gives_what_the_profile_itself_gives(name: str) -> None:
    from cutter.discovery import infer_profile

    data = document(name)
    assert discover(data, infer_profile(data)) == found(name)
