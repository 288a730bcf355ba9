"""The first pass: one regex scan of the normalised text finds every heading line a
profile knows (unit, structural level, stop), in source order.

Markdown's own structure is honoured on the way: YAML front matter and fenced
code blocks hold no headings, and a setext heading (a line underlined with ``===``
or ``---``) is matched as the ATX heading it stands for (``# …`` or ``## …``).
Trailer lines are looked for later, after the last unit only.

``Scans`` holds the scans of one text by profile: inference and the cut share one,
so what the cut sees is by construction the chosen profile's own scan, and a
profile the inference already scanned (Vietnamese) is not scanned twice.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import chain

import msgspec

from cutter.discovery.combine import SEP, Scanner, combine
from cutter.discovery.numbering import NUMERAL, normalise_number
from cutter.discovery.profiles import Profile

_FENCE = r"(?P<mark>`{3,}|~{3,})"
_SETEXT = r"(?P<mark>=+|-{2,})[ \t]*$"
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t\r]*$", re.MULTILINE)
_NOT_PARAGRAPH = re.compile(r"[ \t]*(?:[-*+>|#]|\d+[.)](?:[ \t]|$)|`{3}|~{3})| {4}")
_UNIT_GROUPS = ("num", "num2", "loose")
_CLOSING_HASHES = re.compile(r"[ \t]+#+$")
_NUMBER_IN_LABEL = re.compile(
    rf"(?:\([^)]*\)\s+)?(?:§+\s*|[^\W\d_]+(?:\.\s*|\s+))?(?P<num>{NUMERAL})"
    r"(?:\s+(?:und|bis|and|to|à|et|và|đến|[-\u2013\u2014])\s+(?:§+\s*|[^\W\d_]+\.?\s+)?"
    rf"(?P<num2>{NUMERAL}))?(?![\w])"
)


class Hit(msgspec.Struct, frozen=True, gc=False):
    """One heading line: a ``unit``, a structural level (``group``), ``trailer`` or ``stop``."""

    kind: str
    start: int  # character offsets of the line in the normalised text
    end: int
    label: str
    number: str | None = None
    level: int = 0  # the group's index in the profile
    atx: int = 0  # the ATX heading level, 0 when the line is not an ATX heading


def _split_atx(raw: str) -> tuple[int, str]:
    """The ATX level of a line (0 if none) and the line without its ``#`` marks."""
    body = raw if raw[:1] == "#" else raw.lstrip(" \t")
    if body[:1] != "#":
        return 0, raw
    rest = body.lstrip("#")
    return len(body) - len(rest), rest


def clean_label(raw: str) -> str:
    """A heading as written, without ATX marks and with single spaces."""
    atx, label = _split_atx(raw)
    label = label.strip()
    if atx and label.endswith("#"):
        label = _CLOSING_HASHES.sub("", label)
    if "  " in label or "\t" in label:
        label = " ".join(label.split())
    return label


def atx_level(raw: str) -> int:
    return _split_atx(raw)[0]


@lru_cache(maxsize=64)
def scanner_for(profile: Profile) -> Scanner:
    parts = [("fence", _FENCE)]
    if profile.stop is not None:
        parts.append(("stop", profile.stop))
    parts.append(("unit", profile.unit))
    parts += [(f"g{index}", pattern) for index, pattern in enumerate(profile.groups)]
    parts.append(("setext", _SETEXT))
    return combine(parts)


def _unit(raw: str, start: int, end: int, num: str | None, num2: str | None) -> Hit:
    body = raw if raw[:1] == "#" else raw.lstrip(" \t")
    if body[:1] == "#":
        label = body.lstrip("#")
        atx = len(body) - len(label)
        label = label.strip()
        if label.endswith("#"):
            label = clean_label(raw)
    else:
        atx, label = 0, body.rstrip()
    if "  " in label or "\t" in label:
        label = " ".join(label.split())
    if num is None:
        found = _NUMBER_IN_LABEL.match(label)
        num, num2 = (found["num"], found["num2"]) if found else (None, None)
    if num2 is not None or num is None or not num.isdigit():
        num = normalise_number(num, num2)
    return Hit("unit", start, end, label, num, 0, atx)


class _Scan:
    """Classifies the lines the scanner found, remembering what the next line needs."""

    def __init__(self, text: str, scanner: Scanner) -> None:
        self.text = text
        self.scanner = scanner
        self.last_hit = -1  # where the line of the last hit starts
        self.hits: list[Hit] = []

    def add(self, name: str, raw: str, at: tuple[int, int], groups: dict[str, str | None]) -> None:
        """Record the line ``raw`` at ``at`` (start, end) as alternative ``name`` matched
        it, with its inner groups (``num``, ``num2``, ``loose``, ``label``)."""
        if name == "unit":
            if groups.get("loose") is not None and not self.after_break(at[0]):
                return
            hit = _unit(raw, at[0], at[1], groups.get("num"), groups.get("num2"))
        elif name[0] == "g":
            label = groups.get("label")
            label = clean_label(raw if label is None else label)
            hit = Hit("group", at[0], at[1], label, None, int(name[1:]), atx_level(raw))
        else:
            hit = Hit(name, at[0], at[1], clean_label(raw), None, 0, atx_level(raw))
        self.hits.append(hit)
        self.last_hit = at[0]

    def add_alone(self, name: str, raw: str, at: tuple[int, int]) -> bool:
        """Match ``raw`` alone against alternative ``name``; record it if it matches."""
        match = self.scanner.singles[name].match(raw)
        if match is not None:
            self.add(name, raw, at, match.groupdict())
        return match is not None and self.last_hit == at[0]

    def after_break(self, start: int) -> bool:
        """Whether the line before ``start`` is blank or a heading (or there is none)."""
        if start == 0:
            return True
        before = self.text.rfind("\n", 0, start - 1) + 1
        return before == self.last_hit or not self.text[before : start - 1].strip()

    def setext(self, mark: str, start: int) -> None:
        """The line above an underline, as the ATX heading it stands for."""
        end = start - 1
        begin = self.text.rfind("\n", 0, end) + 1
        raw = self.text[begin:end]
        if start == 0 or begin == self.last_hit or not raw.strip() or _NOT_PARAGRAPH.match(raw):
            return
        synthetic = ("# " if mark[0] == "=" else "## ") + raw.strip()
        for name in self.scanner.singles:
            if name not in ("fence", "setext") and self.add_alone(name, synthetic, (begin, end)):
                return


def _front_matter_end(text: str) -> int:
    if not text.startswith(("---\n", "---\r\n")):
        return 0
    close = _FRONT_MATTER_END.search(text, 4)
    return close.end() if close else 0


def _names(scanner: Scanner, name: str) -> tuple[str, ...]:
    return tuple(f"{name}{SEP}{g}" if g in scanner.inner[name] else "" for g in _UNIT_GROUPS)


def scan(text: str, profile: Profile) -> list[Hit]:
    """Every unit, structural and stop line of ``text`` that ``profile`` knows, in order."""
    scanner = scanner_for(profile)
    state = _Scan(text, scanner)
    hits = state.hits
    num, num2, loose = _names(scanner, "unit")
    front = _front_matter_end(text)
    head = scanner.first.match(text) if front == 0 else None
    matches = scanner.rest.finditer(text, max(front - 1, 0))
    fence = ""
    size = len(text)
    for match in chain([head] if head is not None else [], matches):
        start = match.end()  # 0 for the head: its lookahead consumes nothing either
        name = match.lastgroup
        if name == "fence" or fence:
            mark = match.group(f"fence{SEP}mark") if name == "fence" else ""
            if not fence:
                fence = mark
            elif mark[:1] == fence[0] and len(mark) >= len(fence):
                fence = ""
            continue
        end = text.find("\n", start)
        if end < 0:
            end = size
        if name == "unit" and match.end(name) <= end:  # the common case, inline
            if loose and match.group(loose) is not None and not state.after_break(start):
                continue  # a capitalised body line that happens to begin with a label
            number = match.group(num) if num else None
            hits.append(
                _unit(text[start:end], start, end, number, match.group(num2) if num2 else None)
            )
            state.last_hit = start
        elif name == "setext":
            state.setext(match.group(f"setext{SEP}mark"), start)
        elif name is None:
            continue
        elif match.end(name) > end:  # ran past its line: match the line alone
            state.add_alone(name, text[start:end], (start, end))
        else:
            groups = {g: match.group(f"{name}{SEP}{g}") for g in scanner.inner[name]}
            state.add(name, text[start:end], (start, end), groups)
    return hits


class Scans:
    """``scan(text, profile)`` for one ``text``, each profile scanned at most once.

    It holds nothing but those scans, keyed by the profile that made them: the
    heading lines it hands out for a profile are that profile's, whoever asked first.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._done: dict[Profile, tuple[Hit, ...]] = {}

    def __call__(self, profile: Profile) -> tuple[Hit, ...]:
        hits = self._done.get(profile)
        if hits is None:
            hits = self._done[profile] = tuple(scan(self.text, profile))
        return hits
