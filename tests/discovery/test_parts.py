"""The parts under discovery: the normalised copy, numbers, line scanners and their guard."""

from __future__ import annotations

import re
import unicodedata

import pytest

from cutter.discovery.combine import blank_tolerant, combine
from cutter.discovery.firstchars import first_chars, guard
from cutter.discovery.numbering import normalise_number, numbering_warnings, sort_key
from cutter.discovery.text import Source, normalise


def test_the_copy_keeps_every_line_start() -> None:
    raw = "\ufeffArt\xa01\r\nDie\u0302\u0300u x\nplain \ufeffline\n\ufeff\n"
    data = raw.encode()
    source = Source.of(data)
    assert len(source.text) == len(source.decoded)
    assert [i for i, ch in enumerate(source.text) if ch == "\n"] == [
        i for i, ch in enumerate(source.decoded) if ch == "\n"
    ]
    lines = source.text.split("\n")
    assert lines[0].rstrip() == "Art 1"
    assert lines[1].rstrip() == unicodedata.normalize("NFC", "Die\u0302\u0300u x")
    assert lines[2].rstrip() == "plain line"
    starts = [0] + [i + 1 for i, ch in enumerate(raw) if ch == "\n"]
    assert source.byte_offsets(starts) == [len(raw[:start].encode()) for start in starts]


def test_many_no_break_spaces_are_replaced_at_once() -> None:
    text = "\n".join(f"a\xa0{n}" for n in range(200)) + "\nDie\u0302\u0300u\xa0x"
    assert normalise(text, text.encode()) == (
        "\n".join(f"a {n}" for n in range(200)) + "\nDiều x  "
    )


@pytest.mark.parametrize("kind", ["ascii", "latin", "vietnamese", "invalid"])
def test_byte_offsets_of_line_starts(kind: str) -> None:
    line = {"ascii": "abc", "latin": "äöü ß", "vietnamese": "Điều ữ", "invalid": "x"}[kind]
    data = "\n".join([line] * 50).encode()
    if kind == "invalid":
        data = data.replace(b"x", b"\xff", 7)
    source = Source.of(data)
    starts = [m.end() for m in re.finditer("\n", source.decoded)]
    expected = [m.end() for m in re.finditer(b"\n", data)]
    assert source.byte_offsets(starts) == expected


@pytest.mark.parametrize(
    ("raw", "end", "number"),
    [
        ("44", None, "44"),
        ("12a", None, "12a"),
        ("88-1", None, "88-1"),
        ("4.1", None, "4.1"),
        ("THREE", None, "3"),
        ("twenty-one", None, "21"),
        ("Seventh", None, "7"),
        ("XIV", None, "14"),
        ("PREMIER", None, "1"),
        ("1er", None, "1"),
        ("11 bis", None, "11bis"),
        ("74a", "75", "74a..75"),
        (None, None, None),
    ],
)
def test_normalised_numbers(raw: str | None, end: str | None, number: str | None) -> None:
    assert normalise_number(raw, end) == number


def test_number_order() -> None:
    ordered = ["1", "1a", "1b", "2", "2-1", "2-2", "2-10", "10"]
    keys = [sort_key(n) for n in ordered]
    assert keys == sorted(keys)  # type: ignore[type-var]  # no None among them
    assert sort_key("IV") is None


def test_numbering_warnings_on_ranges_and_suffixes() -> None:
    numbered = [("74", 1), ("74a..75", 2), ("76", 3), ("76a", 4), ("78", 5), (None, 6)]
    assert numbering_warnings(numbered) == [
        "gap in unit numbers, 77 missing: 78 (line 5) after 76a (line 4)"
    ]


def test_first_characters_of_patterns() -> None:
    assert first_chars(r"^[ \t]*(?:#{1,6}[ \t]+)?Điều") == frozenset(" \t#Đ")
    assert first_chars(r"^(?P<a>x)?(?(a)y|z)") == frozenset("xyz")  # a superset is safe
    assert first_chars(r"^\s*A") is not None
    assert first_chars(r"^.") is None
    assert first_chars(r"(?i)^a") is None
    assert first_chars(r"^(?:x)?") is None  # can match an empty line
    assert guard([r"^a", r"^[bc]"]) == "[abc]"
    assert guard([r"^a", r"^[^b]"]) is None


def test_a_scanner_tells_which_pattern_matched_which_line() -> None:
    scanner = combine([("one", r"(?i)^a(?P<num>\d)$"), ("two", r"^(?P<num>\d)b")])
    text = "A1  \r\nx\n2b\nA12\na3"
    found = [(at, name, match.group(f"{name}__num")) for at, name, match in scanner.matches(text)]
    assert found == [(0, "one", "1"), (8, "two", "2"), (15, "one", "3")]


def test_blank_tolerant_rewrites_only_line_ends() -> None:
    assert blank_tolerant(r"a$") == r"a(?=[ \t\r\f\v]*$)"
    assert blank_tolerant(r"[$]\$") == r"[$]\$"
    assert blank_tolerant(r"[]$]$") == r"[]$](?=[ \t\r\f\v]*$)"


def test_built_in_patterns_also_compile_as_bytes_patterns() -> None:
    from cutter.discovery import PROFILES, markdown_profile, plain_profile

    profiles = [*PROFILES.values(), markdown_profile(3), markdown_profile(family="paragraph")]
    profiles += [plain_profile(family) for family in ("paragraph", "section", "clause")]
    for profile in profiles:
        for pattern in (profile.unit, *profile.groups, profile.trailer, profile.stop):
            if pattern is not None:
                re.compile(pattern.encode(), re.MULTILINE)
