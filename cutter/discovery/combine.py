"""Several line patterns as one scanner: a single ``re.finditer`` pass finds every line
that matches any of them, and says which.

Each pattern becomes one named alternative inside a lookahead after a newline
(``\\n(?=[#Đ…])(?=(?P<unit>…)|(?P<g0>…))``): the literal newline lets the regex
engine jump from line to line instead of trying every position, the character
class (``cutter.discovery.firstchars``) skips lines no pattern can match, and the
lookahead consumes nothing, so a pattern that runs past its line cannot hide the
next one. Named groups inside a pattern are prefixed with its alternative's name
(``unit__num``); leading global flags (``(?i)…``) are scoped to the pattern; and
every ``$`` also allows trailing blanks and a CR, so a pattern sees each line as
if it were stripped of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cutter.discovery.firstchars import guard

_LEADING_FLAGS = re.compile(r"\(\?([aimsux]+)\)")
_NAMED = re.compile(r"(?<!\\)\(\?P(<|=)(\w+)([>)])")
_CONDITION = re.compile(r"(?<!\\)\(\?\((\w+)\)")
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")
_LINE_END = r"(?=[ \t\r\f\v]*$)"
SEP = "__"
# The inner groups the engine reads.
INNER = ("num", "num2", "loose", "label", "mark")


def blank_tolerant(pattern: str) -> str:
    """``pattern`` with every ``$`` (outside a character class) allowing trailing blanks."""
    out: list[str] = []
    index, size, in_class = 0, len(pattern), False
    while index < size:
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            out.append(char)
            index += 1
            for literal in ("^", "]"):  # "[^]…]" and "[]…]" hold a literal "]"
                if pattern[index : index + 1] == literal:
                    out.append(literal)
                    index += 1
            continue
        elif char == "$":
            char = _LINE_END
        out.append(char)
        index += 1
    return "".join(out)


def scoped(pattern: str, prefix: str) -> str:
    """``pattern`` as a part of a larger one: flags scoped, named groups prefixed."""
    flags = _LEADING_FLAGS.match(pattern)
    body = pattern[flags.end() :] if flags else pattern
    if _NUMBERED_BACKREF.search(body):
        raise ValueError(f"numbered backreferences are not supported, name the group: {pattern!r}")
    body = _NAMED.sub(lambda m: f"(?P{m[1]}{prefix}{SEP}{m[2]}{m[3]}", body)
    body = _CONDITION.sub(lambda m: m[0] if m[1].isdigit() else f"(?({prefix}{SEP}{m[1]})", body)
    return f"(?{flags[1]}:{body})" if flags else f"(?:{body})"


@dataclass(frozen=True, slots=True)
class Scanner:
    """Finds the lines matching any of several named patterns, in source order."""

    first: re.Pattern[str]  # the alternatives at offset 0
    rest: re.Pattern[str]  # the alternatives after each newline
    singles: dict[str, re.Pattern[str]]  # each pattern alone, for one line
    inner: dict[str, tuple[str, ...]]  # the inner groups the engine reads, per alternative

    def matches(self, text: str, pos: int = 0) -> Iterator[tuple[int, str, re.Match[str]]]:
        """``(line start, alternative name, match)`` for every matching line from ``pos``."""
        if pos == 0:
            head = self.first.match(text)
            if head is not None and head.lastgroup is not None:
                yield 0, head.lastgroup, head
        for match in self.rest.finditer(text, max(pos - 1, 0)):
            name = match.lastgroup
            if name is not None:
                yield match.end(), name, match


def combine(parts: Sequence[tuple[str, str]]) -> Scanner:
    """A scanner over ``(name, pattern)`` pairs; earlier pairs win on a line both match."""
    tolerant = [(name, blank_tolerant(pattern)) for name, pattern in parts]
    body = "|".join(f"(?P<{name}>{scoped(pattern, name)})" for name, pattern in tolerant)
    chars = guard(pattern for _, pattern in tolerant)
    first = re.compile(f"(?=(?:{body}))", re.MULTILINE)
    rest = re.compile(f"\\n{f'(?={chars})' if chars else ''}(?=(?:{body}))", re.MULTILINE)
    inner = {
        name: tuple(g for g in INNER if f"{name}{SEP}{g}" in first.groupindex) for name, _ in parts
    }
    return Scanner(
        first=first,
        rest=rest,
        singles={name: re.compile(pattern, re.MULTILINE) for name, pattern in tolerant},
        inner=inner,
    )
