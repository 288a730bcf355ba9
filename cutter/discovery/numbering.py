"""Unit numbers: normalised from the label as written, and checked for sequence.

``normalise_number("44")`` is ``"44"``, ``"12a"`` stays ``"12a"``, ``"88-1"``
stays ``"88-1"``, ``"THREE"`` and ``"III"`` become ``"3"``, ``"1er"`` and
``"PREMIER"`` become ``"1"``; a range heading (``Art 74a und 75``) gets
``"74a..75"``. Sequence problems (duplicates, gaps, numbers going backwards)
become warnings; nothing is merged or dropped because of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

_UNITS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]


def _word_values() -> dict[str, int]:
    values = {word: n for n, word in enumerate(_UNITS, 1)}
    values |= {word: n for n, word in enumerate(_TEENS, 10)}
    values |= {word: n for n, word in enumerate(_ORDINALS, 1)}
    values |= {"premier": 1, "première": 1, "premiere": 1}
    for tens, word in enumerate(_TENS, 2):
        values[word] = tens * 10
        for unit, unit_word in enumerate(_UNITS, 1):
            values[f"{word}-{unit_word}"] = tens * 10 + unit
            values[f"{word} {unit_word}"] = tens * 10 + unit
    return values


WORD_VALUES: dict[str, int] = _word_values()

# Longest first, so "TWENTY-ONE" wins over "TWENTY" and "SEVENTEEN" over "SEVEN".
WORD_NUMERAL = (
    "(?i:"
    + "|".join(re.escape(w) for w in sorted(WORD_VALUES, key=lambda w: (-len(w), w)))
    + r")(?![^\W\d_])"
)
ROMAN_NUMERAL = (
    r"(?=[MDCLXVI])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})(?![^\W\d_])"
)
# 44, 12a, 143g, 88-1, 4.1, 1er, 11 bis
DIGIT_NUMERAL = (
    r"\d+(?:(?:[.-]\d+)+|[a-z]{1,2}(?![^\W\d_]))?"
    r"(?:[ \t]?(?:bis|ter|quater|quinquies)(?![^\W\d_])(?![ \t]+(?:§+[ \t]*)?\d))?"
)
NUMERAL = f"(?:{DIGIT_NUMERAL}|{ROMAN_NUMERAL}|{WORD_NUMERAL})"

_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
_ROMAN = re.compile(ROMAN_NUMERAL)
_KEY = re.compile(r"(\d+)(.*)")
_TOKENS = re.compile(r"\d+|[^\W\d_]+")


def roman_value(text: str) -> int:
    total = 0
    for char, following in zip(text, [*text[1:], ""], strict=True):
        value = _ROMAN_VALUES[char]
        total += -value if following and _ROMAN_VALUES[following] > value else value
    return total


def _one(raw: str) -> str:
    text = " ".join(raw.split())
    if text[:1].isdigit():
        text = text.replace(" ", "").lower()
        return "1" if text in ("1er", "1re") else text
    if _ROMAN.fullmatch(text):
        return str(roman_value(text))
    value = WORD_VALUES.get(text.lower())
    return str(value) if value is not None else text


def normalise_number(raw: str | None, raw_end: str | None = None) -> str | None:
    """The normalised number of a label's numeral (and of a range's end)."""
    if raw is None:
        return None
    if raw_end is None:
        return raw if raw.isdigit() else _one(raw)
    return f"{_one(raw)}..{_one(raw_end)}"


SuffixKey = tuple[tuple[int, int, str], ...]
# A longer run of digits is no article number anyone orders by; converting it with
# int() costs quadratic time and, past 4,300 digits, raises ValueError. Such a
# number is kept as written and left out of the sequence check, with a warning.
MAX_ORDERED_DIGITS = 30
_LONG_DIGITS = re.compile(rf"\d{{{MAX_ORDERED_DIGITS + 1},}}")


def too_long(number: str) -> bool:
    """Whether ``number`` holds a run of digits too long to be ordered."""
    return _LONG_DIGITS.search(number) is not None


def sort_key(number: str) -> tuple[int, SuffixKey] | None:
    """``(base, suffix)`` for ordering numbers; ``None`` when not numeric (or too long)."""
    if too_long(number):
        return None
    if number.isdigit():
        return int(number), ()
    match = _KEY.fullmatch(number)
    if match is None:
        return None
    suffix = tuple(
        (0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in _TOKENS.findall(match[2])
    )
    return int(match[1]), suffix


def numbering_warnings(
    units: Sequence[tuple[str | None, int]], line_of: Callable[[int], int] = lambda at: at
) -> list[str]:
    """Warnings for ``(number, position)`` pairs in source order: duplicates, gaps,
    numbers going backwards; ``line_of`` turns a position into a line number."""
    warnings: list[str] = []
    previous: tuple[str, int, tuple[int, SuffixKey]] | None = None
    start: tuple[int, SuffixKey] | None
    end: tuple[int, SuffixKey] | None
    plain = -2  # the previous number when it was a plain integer, so n + 1 is quick
    for number, at in units:
        if number is None:
            continue
        if too_long(number):
            warnings.append(
                f"unit number too long to check its order: {len(number)} characters"
                f" (line {line_of(at)})"
            )
            continue
        if number.isdigit():
            value = int(number)
            if value == plain + 1:
                plain = value
                previous = (number, at, (value, ()))
                continue
            plain = value
            start = end = (value, ())
        else:
            plain = -2
            first, _, last = number.partition("..")
            start = sort_key(first)
            end = sort_key(last) if last else start
            if start is None or end is None:
                continue
        if previous is not None:
            prev_number, prev_at, prev_end = previous
            problem = ""
            if start == prev_end:
                problem = "duplicate unit number"
            elif start < prev_end:
                problem = "unit number out of order"
            elif start[0] > prev_end[0] + 1:
                low, high = prev_end[0] + 1, start[0] - 1
                problem = f"gap in unit numbers, {low if low == high else f'{low}-{high}'} missing"
            if problem:
                warnings.append(
                    f"{problem}: {number} (line {line_of(at)}) "
                    f"after {prev_number} (line {line_of(prev_at)})"
                )
        previous = (number, at, end)
    return warnings
