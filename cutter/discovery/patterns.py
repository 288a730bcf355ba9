"""Regex building blocks of the built-in profiles, each applied to one normalised line.

A heading is a *family* keyword (``Article``, ``§``, ``Section``, ``Điều`` …), a
numeral (``12``, ``12a``, ``88-1``, ``IV``, ``THREE``) and a *tail*. In plain text
the tail decides whether a line is a heading or a body line that happens to start
with a label:

- nothing after the number (``Article 12``, ``ARTICLE THREE``, ``Art. 3``, ``§ 7``);
- a separator and a title (``Article 1. Purpose``, ``Điều 1. Phạm vi``, ``Titre II - …``);
- a capitalised title with no separator (``§ 1 Keine Strafe ohne Gesetz``): the
  ``loose`` form, which counts only after a blank line or another heading, so a
  wrapped body line that begins with ``§ 3 Die …`` is not taken.

Anything else (``Article 16(2) TFEU …``, ``Article 5 of the Charter``, ``Điều cấm
của luật``, ``Mục đích của …``) is body text. Behind an ATX marker (``### Art 1``)
the heading is explicit and any tail is accepted.

Named groups the engine reads: ``num`` and ``num2`` (a range's end) in unit
patterns, ``loose`` (see above), ``label`` in group patterns (the path element;
otherwise the whole line).
"""

from __future__ import annotations

from cutter.discovery.numbering import DIGIT_NUMERAL, NUMERAL

UPPER = "A-ZÀ-ÖØ-ÞĐ"
ATX_PREFIX = r"#{1,6}[ \t]+"
# Dashes: hyphen, en dash, em dash, put in the patterns as characters (not as the
# escape ``\u2013``) so that every built-in pattern also compiles as a bytes pattern.
DASHES = "[-\u2013\u2014]"  # not a raw string: the characters themselves
_RANGE_WORDS = rf"(?:und|bis|and|to|through|à|au|et|và|đến|{DASHES})"

# Family keywords, each with the blank (or period) that separates it from the number.
FAMILIES: dict[str, str] = {
    "article": (
        r"(?:(?:Articles?|ARTICLES?|Artikel|ARTIKEL|Artículo|Articolo|Art|ART)[ \t]+"
        r"|(?:Art|ART)\.[ \t]*)"
    ),
    "paragraph": r"§§?[ \t]*",
    "section": r"(?:(?:Section|SECTION)[ \t]+|(?:Sec|SEC)\.[ \t]*)",
    "chapter": r"(?:Chapter|CHAPTER|Chapitre|CHAPITRE|Kapitel|KAPITEL)[ \t]+",
    "dieu": r"(?:Điều|ĐIỀU)[ \t]+",
}

# Nothing after the number, or a separator and a title.
STRICT_TAIL = rf"(?:[ \t]*[.:]?[ \t]*$|[ \t]*(?:[.:]|{DASHES})[ \t]*\S.*$)"
LOOSE_TAIL = rf"[ \t]+(?P<loose>[{UPPER}][^.;!?\n]*?)(?<!,)[ \t]*$"
PLAIN_TAIL = rf"(?:{STRICT_TAIL}|{LOOSE_TAIL})"
# Behind an ATX marker: anything that does not glue a word to the number.
ATX_TAIL = r"(?:[^\w\n].*)?$"
# Structural headings: a label alone, a colon or dash and a title, or ". TITLE IN CAPITALS"
# (so "Section 1.  All legislative Powers …", a section sharing its line with its body,
# is not a heading).
GROUP_TAIL = rf"(?:[ \t]*[.:]?[ \t]*$|[ \t]*(?::|{DASHES})[ \t]*\S.*$|[ \t]*\.[ \t]+[^a-z\n]*$)"


def _numbered(keyword: str, numeral: str) -> str:
    end = rf"(?:[ \t]+{_RANGE_WORDS}[ \t]+(?:{keyword})?(?P<num2>{numeral}))?"
    return rf"(?:{keyword})(?P<num>{numeral}){end}"


def plain_unit(keyword: str, tail: str = PLAIN_TAIL, numeral: str = NUMERAL) -> str:
    """A unit heading of one family, with or without an ATX marker."""
    atx = rf"(?P<atx>{ATX_PREFIX}(?:\([^)\n]*\)[ \t]+)?)"
    return rf"^[ \t]*{atx}?{_numbered(keyword, numeral)}(?(atx){ATX_TAIL}|{tail})"


def markdown_unit(keyword: str) -> str:
    """A unit heading of one family behind an ATX marker (``### Art 1``, ``## Section 2.``)."""
    prefix = rf"^{ATX_PREFIX}(?:\([^)\n]*\)[ \t]+)?"
    return rf"{prefix}{_numbered(keyword, NUMERAL)}{ATX_TAIL}"


def markdown_level(level: int) -> str:
    """Any ATX heading of exactly ``level`` (``#`` is 1)."""
    return rf"^#{{{level}}}(?!#)(?:[ \t].*)?$"


def group(label: str, tail: str = GROUP_TAIL) -> str:
    """A structural heading, with or without an ATX marker; ``label`` is the path element."""
    return rf"^[ \t]*(?P<atx>{ATX_PREFIX})?(?P<label>{label})(?(atx){ATX_TAIL}|{tail})"


def plain_group(keywords: str) -> str:
    return group(rf"(?:{keywords})[ \t]+{NUMERAL}")


CLAUSE_UNIT = rf"^[ \t]*(?P<num>{DIGIT_NUMERAL})\.(?:[ \t]+\S.*)?$"

PART = plain_group("Part|PART|Partie|PARTIE|Teil|TEIL|Book|BOOK|Livre|LIVRE|Buch|BUCH")
TITLE = plain_group("Title|TITLE|Titre|TITRE|Titel|TITEL")
CHAPTER = plain_group("Chapter|CHAPTER|Chapitre|CHAPITRE|Kapitel|KAPITEL")
SECTION = plain_group("Section|SECTION|Abschnitt|ABSCHNITT")
ARTICLE = plain_group("Article|ARTICLE|Artikel|ARTIKEL|Art\\.|Art")

# Vietnamese structure: Phần > Chương > Mục > Tiểu mục, then Điều.
VN_GROUPS = tuple(
    group(label, STRICT_TAIL)
    for label in (
        rf"(?:Phần|PHẦN)[ \t]+(?:(?:thứ|THỨ)[ \t]+[^\W\d_]+|{NUMERAL})",
        rf"(?:Chương|CHƯƠNG)[ \t]+{NUMERAL}",
        r"(?:Mục|MỤC)[ \t]+\d+",
        r"(?:Tiểu mục|TIỂU MỤC)[ \t]+\d+",
    )
)
VN_UNIT = plain_unit(FAMILIES["dieu"], tail=STRICT_TAIL, numeral=DIGIT_NUMERAL)
VN_TRAILER = (
    rf"^[ \t]*(?:{ATX_PREFIX})?(?:"
    r"(?:Bộ luật|BỘ LUẬT|Luật|LUẬT|Hiến pháp|HIẾN PHÁP|Pháp lệnh|Nghị quyết|Nghị định)"
    r"[ \t]+này[ \t]+(?:đã[ \t]+)?được\b.*\bthông[ \t]+qua"
    r"|(?:TM\.[ \t]+\S.*|CHỦ TỊCH QUỐC HỘI|Nơi nhận:?)[ \t]*$"
    r"|(?:PHỤ LỤC|Phụ lục)(?:[ \t]+\S+)?[ \t]*$"
    r")"
)
VN_STOP = rf"^[ \t]*(?:{ATX_PREFIX})?XÁC THỰC VĂN BẢN HỢP NHẤT[ \t]*$"

_ANNEX = (
    r"ANNEX(?:ES)?|Annex(?:es)?|APPENDIX|Appendix|APPENDICES|Appendices|SCHEDULE|Schedule"
    r"|ANHANG|Anhang|ANLAGE|Anlage|ANNEXE|Annexe|PHỤ LỤC|Phụ lục"
)
TRAILER = (
    r"^[ \t]*(?:"
    r"(?:Done|DONE)[ \t]+(?:at|in)\b"
    r"|(?:In|IN)[ \t]+(?:witness|WITNESS)[ \t]+(?:whereof|WHEREOF)\b"
    r"|Signed[ \t]+(?:for|by|at|on|in)\b"
    r"|Fait[ \t]+à\b|Geschehen[ \t]+zu\b"
    rf"|(?:{_ANNEX})(?:[ \t]+[\w.-]+)?[ \t]*$"
    rf"|{ATX_PREFIX}(?:{_ANNEX})\b.*$"
    r")"
)
