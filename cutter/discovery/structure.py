"""The second pass: from the heading lines to units with their paths, the trailer and
the warnings.

- After the first ``stop`` line no heading is a unit (reported).
- The trailer starts at the first trailer line after the last unit heading that is
  not itself a trailer line, or else at the stop line.
- A structural heading opens its level and closes every deeper one (and, in
  Markdown, every heading of its ATX level or deeper); a unit heading closes the
  Markdown levels at or below its own. The open levels are the unit's ``path``.
- Three or more structural headings of one level in a row, with only blank lines
  between them, are a table of contents: they close their level and open nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from cutter.discovery.combine import Scanner
from cutter.discovery.numbering import numbering_warnings
from cutter.discovery.scan import Hit

_TOC_RUN = 3
_SHOWN = 12


@dataclass(frozen=True, slots=True)
class Outline:
    units: tuple[tuple[Hit, tuple[str, ...]], ...]  # each unit heading with its path
    trailer: int | None  # the character offset where the trailer starts
    warnings: tuple[str, ...]


def _table_of_contents(hits: Sequence[Hit], text: str) -> set[int]:
    """Indices (into ``hits``) of group headings that form a table of contents."""
    toc: set[int] = set()
    run: list[int] = []
    for index, hit in enumerate(hits):
        if hit.kind != "group":
            continue
        if run:
            previous = hits[run[-1]]
            if (
                run[-1] == index - 1
                and hit.level == previous.level
                and not text[previous.end : hit.start].strip()
            ):
                run.append(index)
                continue
            if len(run) >= _TOC_RUN:
                toc.update(run)
        run = [index]
    if len(run) >= _TOC_RUN:
        toc.update(run)
    return toc


def _paths(hits: Sequence[Hit], text: str) -> list[tuple[Hit, tuple[str, ...]]]:
    toc = _table_of_contents(hits, text)
    stack: list[Hit] = []
    path: tuple[str, ...] = ()
    deepest = 0  # the deepest ATX level open
    units: list[tuple[Hit, tuple[str, ...]]] = []
    for index, hit in enumerate(hits):
        if hit.kind == "unit":
            if hit.atx and deepest >= hit.atx:
                stack = [held for held in stack if not held.atx or held.atx < hit.atx]
                path = tuple(held.label for held in stack)
                deepest = max((held.atx for held in stack), default=0)
            units.append((hit, path))
        elif hit.kind == "group":
            stack = [
                held
                for held in stack
                if held.level < hit.level and not (hit.atx and held.atx >= hit.atx)
            ]
            if index not in toc:
                stack.append(hit)
            path = tuple(held.label for held in stack)
            deepest = max((held.atx for held in stack), default=0)
    return units


def _trailer(units: Sequence[Hit], text: str, trailer: Scanner, limit: int) -> int | None:
    """Where the first trailer line after the last unit that is not one starts."""
    alone = trailer.singles["trailer"]
    last = len(units)
    while last and alone.match(text, units[last - 1].start, units[last - 1].end):
        last -= 1
    after = units[last - 1].end if last else 0
    for start, _, _ in trailer.matches(text, after):
        return start if start < limit else None
    return None


class _LineNumbers:
    """1-based line numbers of character offsets, counting from the nearest known one
    at or before the offset asked for (offset 0 is line 1, always known)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.offsets = [0]  # ascending, each with its line in ``lines``
        self.lines = [1]

    def __call__(self, at: int) -> int:
        index = bisect_right(self.offsets, at) - 1  # >= 0: offsets[0] is 0
        offset = self.offsets[index]
        line = self.lines[index] + self.text.count("\n", offset, at)
        if offset != at:
            self.offsets.insert(index + 1, at)
            self.lines.insert(index + 1, line)
        return line


def outline(hits: Sequence[Hit], text: str, trailer: Scanner | None) -> Outline:
    """Units with paths, the trailer's start and the warnings, from the heading lines."""
    line_of = _LineNumbers(text)
    warnings: list[str] = []
    stop = next((hit for hit in hits if hit.kind == "stop"), None)
    limit = len(text) + 1
    if stop is not None:
        limit = stop.start
        after = [hit for hit in hits if hit.kind == "unit" and hit.start > stop.start]
        if after:
            lines = ", ".join(str(line_of(hit.start)) for hit in after[:_SHOWN])
            warnings.append(
                f"{len(after)} unit headings after the stop line {line_of(stop.start)} "
                f"({stop.label!r}) are not units: lines {lines}"
                + (", …" if len(after) > _SHOWN else "")
            )
        hits = [hit for hit in hits if hit.start < stop.start]
    units = [hit for hit in hits if hit.kind == "unit"]
    start = _trailer(units, text, trailer, limit) if trailer is not None and units else None
    if start is None and stop is not None:
        start = stop.start
    if start is not None:
        hits = [hit for hit in hits if hit.start < start]
    found = _paths(hits, text)
    warnings += numbering_warnings([(hit.number, hit.start) for hit, _ in found], line_of)
    return Outline(units=tuple(found), trailer=start, warnings=tuple(warnings))
