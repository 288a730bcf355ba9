"""Which characters can begin a match of a pattern: a cheap guard for the line scanner.

Most lines of a document start with a character no heading pattern can start
with; checking that one character first spares the regex engine every
alternative on those lines. The set is read from the parsed pattern (the
standard library's own regex parser); when it cannot be known (a negated class,
``.``, case-insensitive matching, a pattern that can match nothing at all), there
is no guard, which is slower but never wrong.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import Any

_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(map(chr, range(0x2000, 0x200B)))
)
_MAX_RANGE = 1024


class _Unknown(Exception):
    """The first characters cannot be told."""


def _class(items: Iterable[tuple[Any, Any]], c: Any) -> set[str]:
    chars: set[str] = set()
    for op, av in items:
        if op is c.LITERAL:
            chars.add(chr(av))
        elif op is c.RANGE and av[1] - av[0] <= _MAX_RANGE:
            chars.update(map(chr, range(av[0], av[1] + 1)))
        elif op is c.CATEGORY and av is c.CATEGORY_SPACE:
            chars |= _WHITESPACE
        else:
            raise _Unknown
    return chars


def _first(items: Iterable[tuple[Any, Any]], c: Any, ignorecase: bool) -> tuple[set[str], bool]:
    """``(characters a match can start with, whether the sequence can match nothing)``."""
    chars: set[str] = set()
    for op, av in items:
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue
        if ignorecase or op in (c.ANY, c.NOT_LITERAL, c.GROUPREF):
            raise _Unknown
        if op is c.LITERAL:
            return chars | {chr(av)}, False
        if op is c.IN:
            return chars | _class(av, c), False
        if op is c.SUBPATTERN:
            flags_on = av[1]
            sub, empty = _first(av[3], c, bool(flags_on & re.IGNORECASE))
        elif op is c.ATOMIC_GROUP:
            sub, empty = _first(av, c, ignorecase)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            sub, empty = _first(av[2], c, ignorecase)
            empty = empty or av[0] == 0
        elif op is c.BRANCH:
            sub, empty = set(), False
            for branch in av[1]:
                more, branch_empty = _first(branch, c, ignorecase)
                sub |= more
                empty = empty or branch_empty
        elif op is c.GROUPREF_EXISTS:
            sub, empty = _first(av[1], c, ignorecase)
            if av[2] is None:
                empty = True
            else:
                more, other_empty = _first(av[2], c, ignorecase)
                sub, empty = sub | more, empty or other_empty
        else:
            raise _Unknown
        chars |= sub
        if not empty:
            return chars, False
    return chars, True


def first_chars(pattern: str) -> frozenset[str] | None:
    """The characters a match of ``pattern`` can start with; ``None`` when unknown."""
    try:
        parser = importlib.import_module("re._parser")
        constants = importlib.import_module("re._constants")
        parsed = parser.parse(pattern, re.MULTILINE)
        chars, empty = _first(parsed, constants, bool(parsed.state.flags & re.IGNORECASE))
    except (_Unknown, ImportError, AttributeError, TypeError, ValueError, IndexError):
        return None
    return None if empty else frozenset(chars)


def guard(patterns: Iterable[str]) -> str | None:
    """A character class matching the first character of any of ``patterns``, or ``None``."""
    union: set[str] = set()
    for pattern in patterns:
        chars = first_chars(pattern)
        if chars is None:
            return None
        union |= chars
    return "[" + "".join(re.escape(ch) for ch in sorted(union)) + "]" if union else None
