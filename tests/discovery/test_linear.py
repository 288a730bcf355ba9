"""Discovery's normalised copy does work linear in the document, counted, not timed.

The copy is made by searching the stored bytes and the decoded text (``find`` and
``rfind``). Handing ``normalise`` a ``bytes`` and a ``str`` that count every
character those searches pass over measures the work itself: four times the
document must cost about four times the characters searched, where the quadratic
pre-pass of issue 12 searched to the end of the document once per marked line
(sixteen times the work for four times the lines).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cutter.discovery.text import normalise


class _Count:
    searched = 0


def _scanned(size: int, start: int | None, end: int | None, found: int, width: int) -> int:
    lo = 0 if start is None else start
    hi = size if end is None else end
    return (found + width if found >= 0 else hi) - lo


def _rscanned(size: int, start: int | None, end: int | None, found: int) -> int:
    lo = 0 if start is None else start
    hi = size if end is None else end
    return hi - (found if found >= 0 else lo)


class CountingBytes(bytes):
    def find(self, sub, start=None, end=None):  # type: ignore[no-untyped-def,override]
        found = super().find(sub, start, end)
        _Count.searched += _scanned(len(self), start, end, found, len(sub))
        return found

    def rfind(self, sub, start=None, end=None):  # type: ignore[no-untyped-def,override]
        found = super().rfind(sub, start, end)
        _Count.searched += _rscanned(len(self), start, end, found)
        return found


class CountingStr(str):
    def find(self, sub, start=None, end=None):  # type: ignore[no-untyped-def,override]
        found = super().find(sub, start, end)
        _Count.searched += _scanned(len(self), start, end, found, len(sub))
        return found

    def rfind(self, sub, start=None, end=None):  # type: ignore[no-untyped-def,override]
        found = super().rfind(sub, start, end)
        _Count.searched += _rscanned(len(self), start, end, found)
        return found


def _work(lines: int, line: Callable[[int, int], str]) -> int:
    text = "".join(line(n, lines) for n in range(lines))
    _Count.searched = 0
    copy = normalise(CountingStr(text), CountingBytes(text.encode()))
    assert len(copy) == len(text)  # every line start kept
    return _Count.searched


DOCUMENTS: dict[str, Callable[[int, int], str]] = {
    # The input: every line carries a combining mark (U+0301, lead byte 0xCC,
    # while no 0xCD occurs at all).
    "every line marked": lambda n, _: f"Dòng e\u0301 {n}\n",
    "marks of both lead bytes": lambda n, _: f"o\u0302 {n} \u0345\n",
    "one line in ten marked": lambda n, _: f"e\u0301 {n}\n" if n % 10 == 0 else f"plain {n}\n",
    "marks and no-break spaces": lambda n, _: f"\ufeffa\xa0{n} e\u0301\n" if n % 3 else f"{n}\n",
    "an indented list, one mark at its end": lambda n, lines: (
        "    " * (n % 6) + f"- item {n}\n" if n < lines - 1 else "- e\u0301\n"
    ),
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_four_times_the_document_is_about_four_times_the_search(name: str) -> None:
    line = DOCUMENTS[name]
    small, large = _work(1_000, line), _work(4_000, line)
    assert small > 0
    assert large <= 5 * small, f"{name}: {small} characters searched, then {large}"
