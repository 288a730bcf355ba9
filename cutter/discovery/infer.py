"""Which profile fits a document, decided from its heading lines.

In this order, the first that finds at least two unit headings wins:

1. Vietnamese: ``Điều N.`` headings (with or without ATX marks).
2. Markdown by label: ATX (or setext) headings labelled with a family and a
   number (``### Art 1``, ``##### § 2``, ``## Section 3.``): the most frequent
   family, at any level.
3. Plain text by label, in order of precedence (a family that contains the next
   one wins): ``Article``, ``§``, ``Section``, ``Chapter``.
4. Markdown by level: every heading of the shallowest level that has two or more.
5. Numbered clauses (``1. …``).

Markdown's structural levels are the ATX levels the document uses, except a
level-1 heading that occurs once (the document's title). Nothing found: the
plain ``Article`` profile, which then reports that there is no unit.

Every label counts for its own family: ``# (XXXX) Art 74a und 75`` is an
``Art`` heading whatever the headings around it are. ``discover(data)`` is
``discover(data, infer_profile(data))``: the profile decided here is handed to
the one cut there, which scans with it (``cutter.discovery.scan.Scans`` spares
the Vietnamese scan a second pass; no other scan's lines are reused).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from cutter.discovery import patterns as p
from cutter.discovery.combine import Scanner, combine
from cutter.discovery.profiles import (
    PLAIN_FAMILIES,
    PROFILES,
    VIETNAMESE,
    Profile,
    markdown_profile,
    plain_profile,
)
from cutter.discovery.scan import Hit, Scans
from cutter.discovery.text import Source

_MIN_UNITS = 2
_FAMILY_OF_LABEL = re.compile(
    r"(?:\([^)]*\)\s+)?(?:" + "|".join(f"({kw})" for kw in p.FAMILIES.values()) + ")"
)
_FAMILY_NAMES = list(p.FAMILIES)
_SETEXT_UNDERLINE = re.compile(r"\n(?:=+|-{2,})[ \t\r]*(?:\n|$)")
_LABELLED = PROFILES["markdown"]  # every labelled heading a unit, every ATX level a group


@lru_cache(maxsize=1)
def _plain_scanners() -> tuple[Scanner, Scanner]:
    families = combine([(name, plain_profile(name).unit) for name in PLAIN_FAMILIES])
    clause = combine([("clause", plain_profile("clause").unit)])
    return families, clause


def _counts(scanner: Scanner, text: str) -> Counter[str]:
    return Counter(name for _, name, _ in scanner.matches(text))


def _group_levels(levels: Counter[int], below: int = 7) -> tuple[int, ...]:
    used = [level for level in sorted(levels) if level < below]
    if levels[1] == 1:
        used = [level for level in used if level != 1]
    return tuple(used)


def _family(label: str) -> str:
    found = _FAMILY_OF_LABEL.match(label)
    return _FAMILY_NAMES[found.lastindex - 1] if found and found.lastindex else ""


def _families(units: Sequence[Hit]) -> Counter[str]:
    """How many unit headings are labelled with each family."""
    return Counter(_family(hit.label) for hit in units)


def _markdown(scans: Scans) -> tuple[Profile | None, Counter[int]]:
    """The Markdown-by-label profile, if one fits, and the count of headings per level."""
    hits = scans(_LABELLED)
    levels = Counter(hit.atx for hit in hits)
    del levels[0]
    families = _families([hit for hit in hits if hit.kind == "unit"])
    family, count = families.most_common(1)[0] if families else ("", 0)
    if count < _MIN_UNITS or not family:
        return None, levels
    return markdown_profile(family=family, group_levels=_group_levels(levels)), levels


def infer(scans: Scans) -> Profile:
    """The profile for the normalised text of ``scans``."""
    text = scans.text
    if "Đ" in text and sum(hit.kind == "unit" for hit in scans(VIETNAMESE)) >= _MIN_UNITS:
        return VIETNAMESE
    levels: Counter[int] = Counter()
    if "#" in text or (("=" in text or "-" in text) and _SETEXT_UNDERLINE.search(text)):
        profile, levels = _markdown(scans)
        if profile is not None:
            return profile
    families, clause = _plain_scanners()
    found = _counts(families, text)
    for family in PLAIN_FAMILIES:
        if found[family] >= _MIN_UNITS:
            return plain_profile(family)
    for level in sorted(levels):
        if levels[level] >= _MIN_UNITS:
            return markdown_profile(level, group_levels=_group_levels(levels, below=level))
    if _counts(clause, text)["clause"] >= _MIN_UNITS:
        return plain_profile("clause")
    return PROFILES["plain"]


def infer_profile(data: bytes) -> Profile:
    """The profile ``discover`` uses for ``data`` when given none."""
    return infer(Scans(Source.of(data).text))
