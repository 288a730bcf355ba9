"""Boundary discovery: cut a stored document into information units.

``discover(data)`` returns candidates that tile ``data`` exactly, in order: a
``preamble`` (kind and label) before the first unit heading, one unit per
heading, a ``trailer`` (kind and label) after the last unit. Regions are byte
offsets into the stored bytes. Patterns see a normalised copy that keeps every
line start of the source (``cutter.discovery.text``): composed diacritics, no
BOM or U+FEFF, no-break spaces as spaces, and each pattern's ``$`` blind to CR
and trailing blanks (``cutter.discovery.combine``). ``profile=None`` infers the
profile (``cutter.discovery.infer``): Vietnamese, Markdown by label, plain text
by label, Markdown by level, numbered clauses.

One cut per bytes: ``discover(data)`` is ``discover(data, infer_profile(data))``
by construction (the inferred profile goes through the same cut, from its own
scan), and it is the only way bytes become candidates for a run: the
``TextDiscoverer`` of the mark and cutplan phases (whose manifest leg A writes)
and ``cutter plan`` both call it, with no profile to choose.

Decisions (where the corpus ground truth leaves a choice):

- A unit's region starts at the first byte of its heading line (a BOM included)
  and runs to the next unit heading. Structural headings (``CHAPTER II``,
  ``Chương II``, ``## II. - …``) between two units stay at the end of the previous
  unit's region; ``path`` carries the structure.
- ``label`` is the heading line as written, normalised (NFC, single spaces, ATX
  ``#`` marks removed): ``Article 1``, ``Điều 1. Phạm vi điều chỉnh``, ``Art 1``.
  ``number`` is the numeral normalised (``44``, ``12a``, ``88-1``; ``THREE``,
  ``IV``, ``PREMIER`` become ``3``, ``4``, ``1``); a range heading gets
  ``first..last``. ``path`` holds the open structural headings, outermost
  first: a level's ``label`` group when its pattern has one (``Chương I``,
  ``Mục 1``, ``CHAPTER III``), else the heading line.
- Plain text is strict about what follows the number: nothing, a separator and a
  title, or a capitalised title after a blank line or another heading (the
  ``loose`` form). So ``Article 16(2) TFEU …``, ``§ 3 of the Act …`` and a
  wrapped ``§ 3 Die …`` are body text. Behind ``#`` marks any tail counts.
- Markdown by label: every ATX or setext heading labelled with the document's
  most frequent family (``### Art 1``, ``##### § 1``) is a unit, whatever its
  level; the other headings are the structure, the ATX level their depth. A
  level-1 heading that occurs once is the title, not structure. Each label
  counts for its own family, behind a ``(…)`` too: ``# () Art 0`` and
  ``# Section 0`` are one of each, so neither family wins and both are units
  of the one heading level.
- Vietnamese: the unit is the Điều; Phần > Chương > Mục > Tiểu mục build the
  path. After ``XÁC THỰC VĂN BẢN HỢP NHẤT`` (a consolidated text's certification)
  no heading is a unit (reported) and the trailer starts there. In the
  consolidated IT law the nine articles that lost their heading in conversion
  (13, 24, 29, 34, 38, 42, 61, 65, 67) are not found: their text ends the
  previous Điều's region, and the gaps are reported.
- Grundgesetz: ``### (XXXX) Art 74a und 75 (weggefallen)`` is one unit numbered
  ``74a..75`` (201 article units); ``### Anhang EV`` starts the trailer, so the
  annex's ``Artikel 3`` … ``Artikel 7`` lines are no units.
- The trailer starts at the first trailer line (``Done at``, ``Signed for``,
  ``ANNEX``, ``Bộ luật này đã được … thông qua``, ``### Anhang`` …) after the last
  unit heading, or at the stop line; a trailer-like line between units is body.
- Duplicate, missing or backward numbers are warnings; nothing is merged.
- Three or more structural headings of one level in a row, with only blank lines
  between them, are a table of contents and open no structure.
- No unit heading at all: one unit labelled ``document`` over the whole text,
  and a warning. Empty bytes: no candidate, and a warning.

Not handled: a setext heading spanning several lines (only the line above the
underline counts), a lone CR as a line break, HTML headings, and decomposed
forms outside U+0300-U+036F (e.g. Hangul jamo) are not composed.
"""

from cutter.discovery.engine import Discovery, TextDiscoverer, discover
from cutter.discovery.infer import infer_profile
from cutter.discovery.profiles import PROFILES, Profile, markdown_profile, plain_profile

__all__ = [
    "PROFILES",
    "Discovery",
    "Profile",
    "TextDiscoverer",
    "discover",
    "infer_profile",
    "markdown_profile",
    "plain_profile",
]
