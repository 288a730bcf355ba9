"""Every corpus document, and its CRLF+BOM variant, is tiled exactly by its candidates."""

from __future__ import annotations

import pytest

from cutter.core.canonical import sha256_hex
from cutter.core.plan import build_manifest, tiling_problems
from cutter.core.records import Candidate, SourceVersion
from cutter.discovery import Discovery, discover
from tests.discovery.corpus import ALL, FR, STGB, VN_CONSTITUTION, crlf_bom, document


def check_tiles(data: bytes, found: Discovery) -> None:
    spans = [(c.start, c.end) for c in found.candidates]
    assert tiling_problems(spans, len(data)) == []
    assert b"".join(data[c.start : c.end] for c in found.candidates) == data
    assert all(c.end > c.start for c in found.candidates)
    version = SourceVersion(
        doc_id="doc", sd_id="sd-doc", sv_id="sv-1", sha256=sha256_hex(data), size=len(data)
    )
    manifest = build_manifest(version, data, found.candidates)
    assert len(manifest.ius) == len(found.candidates)


def shape(found: Discovery) -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    return [(c.kind, c.label, c.number, c.path) for c in found.candidates]


@pytest.mark.parametrize("name", ALL)
def test_regions_reproduce_the_document_byte_for_byte(name: str) -> None:
    data = document(name)
    check_tiles(data, discover(data))


@pytest.mark.parametrize("name", ALL)
def test_crlf_bom_variant_round_trips_and_finds_the_same_units(name: str) -> None:
    data = document(name)
    variant = crlf_bom(data)
    found, found_variant = discover(data), discover(variant)
    check_tiles(variant, found_variant)
    assert shape(found_variant) == shape(found)
    assert found_variant.profile == found.profile
    assert found_variant.warnings == found.warnings
    first = next(c for c in found_variant.candidates)
    assert variant[first.start : first.start + 3] == b"\xef\xbb\xbf"  # the BOM is in a region


@pytest.mark.parametrize("name", ALL)
def test_discovery_is_deterministic(name: str) -> None:
    data = document(name)
    assert discover(data) == discover(bytes(data))


def test_every_unit_region_starts_at_its_heading_line() -> None:
    for name in ALL:
        data = document(name)
        for c in discover(data).candidates:
            assert c.start == 0 or data[c.start - 1 : c.start] == b"\n"


# The three documents without ground truth: what discovery finds, documented.


def units(found: Discovery) -> list[Candidate]:
    return [c for c in found.candidates if c.kind == "unit"]


def test_french_constitution_generalises() -> None:
    found = discover(document(FR))
    assert found.profile == "plain"
    assert len(units(found)) == 109
    assert (units(found)[0].label, units(found)[0].number) == ("ARTICLE PREMIER.", "1")
    assert units(found)[-1].label == "ARTICLE 89."
    assert "88-1" in [c.number for c in units(found)]
    # The table of contents ("Titre Ier : …", "Titre II : …") opens no structure.
    assert units(found)[0].path == ()
    assert units(found)[1].path == ("Titre premier",)
    assert found.warnings[0] == "duplicate unit number: 11 (line 132) after 11 (line 124)"


def test_vietnamese_constitution_generalises() -> None:
    found = discover(document(VN_CONSTITUTION))  # decomposed diacritics, no final newline
    assert found.profile == "vietnamese"
    assert [c.number for c in units(found)] == [str(n) for n in range(1, 121)]
    assert units(found)[63].label == "Điều 64."  # an NFD heading line, composed
    assert found.candidates[-1].kind == "trailer"
    assert found.warnings == ()


def test_criminal_code_generalises() -> None:
    found = discover(document(STGB))
    assert found.profile == "markdown"
    assert len(units(found)) == 559  # 550 "§" headings and 9 "(XXXX) §§ … (weggefallen)"
    assert units(found)[0].label == "§ 1 Keine Strafe ohne Gesetz"
    assert units(found)[-1].number == "358"
    assert units(found)[0].path == (
        "Allgemeiner Teil -",
        "Erster Abschnitt - Das Strafgesetz",
        "Erster Titel - Geltungsbereich",
    )
    assert found.warnings == ()
