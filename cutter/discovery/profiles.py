"""Profiles: what a unit heading, a structural level, a trailer and a stop line look like.

Every pattern is a Python regex applied to one normalised line (see
``cutter.discovery.text``) and anchored at its start. The built-in profiles are in
``PROFILES``; ``infer_profile`` derives per-document variants of them (the family
of labels, the Markdown heading levels) with the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import msgspec

from cutter.discovery import patterns as p


class Profile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to cut one kind of document.

    ``unit`` matches a unit heading; its named groups ``num`` (and ``num2``, a
    range's end) give the unit's number, ``loose`` marks a heading that counts only
    after a blank line or another heading. ``groups`` are the structural levels,
    outermost first: they build each unit's ``path`` (from their ``label`` group,
    or the whole line) and are not units. ``trailer`` matches the line where the
    trailer starts, looked for after the last unit; after a ``stop`` line no
    heading counts as a unit and the trailer starts there at the latest.
    """

    name: str
    unit: str
    groups: tuple[str, ...] = ()
    trailer: str | None = None
    stop: str | None = None


_PLAIN_GROUPS = {
    "article": (p.PART, p.TITLE, p.CHAPTER, p.SECTION),
    "paragraph": (p.PART, p.TITLE, p.CHAPTER, p.SECTION),
    "section": (p.PART, p.TITLE, p.CHAPTER),
    "chapter": (p.PART, p.TITLE),
    "clause": (p.PART, p.TITLE, p.CHAPTER, p.SECTION, p.ARTICLE),
}
PLAIN_FAMILIES = ("article", "paragraph", "section", "chapter")  # in order of precedence


def plain_profile(family: str = "article") -> Profile:
    """Plain text whose unit headings are of one family (``article``, ``paragraph`` …)."""
    unit = p.CLAUSE_UNIT if family == "clause" else p.plain_unit(p.FAMILIES[family])
    return Profile(name="plain", unit=unit, groups=_PLAIN_GROUPS[family], trailer=p.TRAILER)


def markdown_profile(
    level: int | None = None,
    *,
    family: str | None = None,
    group_levels: tuple[int, ...] | None = None,
) -> Profile:
    """Markdown cut at ATX (or setext) headings.

    ``level`` (1 to 6): every heading of that level is a unit. ``family``: every
    heading, at any level, labelled with that family and a number (``### Art 1``,
    ``##### § 2``). Neither: a heading labelled with any family. ``group_levels``
    (default: every level above ``level``, or all six) build the path.
    """
    if level is not None:
        unit = p.markdown_level(level)
        default_levels = tuple(range(1, level))
    else:
        keywords = [p.FAMILIES[family]] if family else list(p.FAMILIES.values())
        unit = p.markdown_unit("|".join(keywords))
        default_levels = tuple(range(1, 7))
    levels = default_levels if group_levels is None else group_levels
    return Profile(
        name="markdown",
        unit=unit,
        groups=tuple(p.markdown_level(n) for n in levels),
        trailer=p.TRAILER,
    )


VIETNAMESE = Profile(
    name="vietnamese",
    unit=p.VN_UNIT,
    groups=p.VN_GROUPS,
    trailer=p.VN_TRAILER,
    stop=p.VN_STOP,
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "markdown": markdown_profile(),
        "plain": plain_profile(),
        "vietnamese": VIETNAMESE,
    }
)
