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

The scans that decide 1 and 2 are the discovery scans of those profiles, so
``discover`` reuses their heading lines instead of scanning again.
"""

from __future__ import annotations

import re
from collections import Counter
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
from cutter.discovery.scan import Hit, scan
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


def _families(units: list[Hit]) -> Counter[str]:
    """How many unit headings are labelled with each family."""
    initials = {hit.label[:1] for hit in units}
    initials.discard("(")  # "(XXXX) §§ 1 bis 3": a range heading, any family
    if len(initials) == 1:  # one family, almost always: name it from one label
        first = next(hit.label for hit in units if hit.label[:1] != "(")
        return Counter({_family(first): len(units)})
    return Counter(_family(hit.label) for hit in units)


def _markdown(text: str) -> tuple[Profile | None, list[Hit] | None, Counter[int]]:
    """The Markdown-by-label profile, if one fits, with its heading lines when the
    scan that decided it found exactly them; and the count of headings per level."""
    hits = scan(text, _LABELLED)
    levels = Counter(hit.atx for hit in hits)
    del levels[0]
    families = _families([hit for hit in hits if hit.kind == "unit"])
    family, count = families.most_common(1)[0] if families else ("", 0)
    if count < _MIN_UNITS or not family:
        return None, None, levels
    group_levels = _group_levels(levels)
    profile = markdown_profile(family=family, group_levels=group_levels)
    if len(families) > 1:  # other families' headings are structure there: scan again
        return profile, None, levels
    if 1 not in group_levels and levels[1]:  # the title is no structural level
        hits = [hit for hit in hits if hit.kind != "group" or hit.atx != 1]
    # Group levels keep their order (``level`` is the ATX level less one), all that
    # the paths need: the heading lines are those the profile's own scan finds.
    return profile, hits, levels


def infer_scan(text: str) -> tuple[Profile, list[Hit] | None]:
    """The profile for a normalised text, and its heading lines if already scanned."""
    if "Đ" in text:
        vietnamese = scan(text, VIETNAMESE)
        if sum(hit.kind == "unit" for hit in vietnamese) >= _MIN_UNITS:
            return VIETNAMESE, vietnamese
    levels: Counter[int] = Counter()
    if "#" in text or (("=" in text or "-" in text) and _SETEXT_UNDERLINE.search(text)):
        profile, hits, levels = _markdown(text)
        if profile is not None:
            return profile, hits
    families, clause = _plain_scanners()
    found = _counts(families, text)
    for family in PLAIN_FAMILIES:
        if found[family] >= _MIN_UNITS:
            return plain_profile(family), None
    for level in sorted(levels):
        if levels[level] >= _MIN_UNITS:
            return markdown_profile(level, group_levels=_group_levels(levels, below=level)), None
    if _counts(clause, text)["clause"] >= _MIN_UNITS:
        return plain_profile("clause"), None
    return PROFILES["plain"], None


def infer_from_text(text: str) -> Profile:
    """The profile for a normalised text (see ``cutter.discovery.text``)."""
    return infer_scan(text)[0]


def infer_profile(data: bytes) -> Profile:
    """The profile ``discover`` uses for ``data`` when given none."""
    return infer_from_text(Source.of(data).text)
