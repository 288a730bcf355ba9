"""Boundary discovery: cut a stored document into information units.

``discover(data)`` returns the candidates that tile ``data`` exactly, in order: a
``preamble`` (kind and label) before the first unit heading, one unit per heading,
a ``trailer`` (kind and label) after the last unit. Regions are byte offsets into
the stored bytes; matching runs on a normalised copy (NFC, no BOM or U+FEFF,
no-break spaces as spaces, CRLF as LF, no trailing blanks) that keeps the lines
of the source, and a line's byte offset comes from the original bytes.

Decisions (where the corpus ground truth left a choice):

- A unit's region starts at the first byte of its heading line (a BOM included)
  and runs to the next unit heading. Structural headings (``CHAPTER II``,
  ``Chương II``, ``## II. - …``) that fall between two units stay at the end of the
  previous unit's region; the structure is carried by ``path`` instead.
- ``label`` is the heading line as written, normalised (NFC, single spaces, ATX
  ``#`` marks removed): ``Article 1``, ``Điều 1. Phạm vi điều chỉnh``, ``Art 1``.
  ``number`` is the normalised numeral (``44``, ``12a``, ``88-1``; ``THREE`` and
  ``IV`` become ``3`` and ``4``); ``path`` holds the open structural headings,
  outermost first (``label`` group of the level's pattern, else the line).
- Vietnamese: the IU is the Điều; Phần > Chương > Mục > Tiểu mục build the path.
  After ``XÁC THỰC VĂN BẢN HỢP NHẤT`` (a consolidated text's certification) no
  heading is a unit and the trailer starts there. In the consolidated IT law the
  nine articles whose headings were lost in conversion (13, 24, 29, 34, 38, 42,
  61, 65, 67) are not found: their text ends the previous Điều's region.
- Grundgesetz: the range heading ``### (XXXX) Art 74a und 75 (weggefallen)`` is a
  unit numbered ``74a..75`` (201 article units); ``### Anhang EV`` starts the
  trailer, and the annex's plain ``Artikel N`` lines are not headings in Markdown.
- Numbering problems (duplicates, gaps, backwards) are warnings; nothing is merged.
- No unit heading at all: one unit labelled ``document`` over the whole text, and
  a warning. Empty bytes: no candidate.
- A table of contents (three or more structural headings in a row with only blank
  lines between) opens no structure.

Not handled: multi-line setext paragraphs (only the line above the underline is
the heading), a lone CR as a line break, HTML headings.
"""

from cutter.discovery.engine import Discovery, TextDiscoverer, discover
from cutter.discovery.infer import infer_profile
from cutter.discovery.lines import LineHeadingDiscoverer
from cutter.discovery.profiles import PROFILES, Profile, markdown_profile, plain_profile

__all__ = [
    "PROFILES",
    "Discovery",
    "LineHeadingDiscoverer",
    "Profile",
    "TextDiscoverer",
    "discover",
    "infer_profile",
    "markdown_profile",
    "plain_profile",
]
