"""The normalised copy of the source that patterns match against, and the way back to bytes.

Lines end at ``\\n`` (LF or CRLF; a lone CR is not a line break). The copy has
exactly the characters' positions of the source decoded (losslessly, with
``surrogateescape``): every line starts at the same character offset in both, so a
match's offset in the copy is an offset in the decoded source, and from there a
byte offset in the stored bytes. What the copy changes, it changes in place:

- no-break spaces (U+00A0, U+2007, U+202F) become spaces;
- on a line holding a U+FEFF (a BOM, or a stray one) or a combining mark of
  U+0300-U+036F (decomposed diacritics), the U+FEFF are dropped and the line is
  composed (NFC), then padded with spaces to its former length (patterns see
  trailing blanks as nothing, see ``cutter.discovery.combine``);
- undecodable bytes become U+FFFD.

A CR before LF and trailing blanks stay; patterns are made blind to them instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

_SPACES = ("\xa0", "\u2007", "\u202f")
_FEW = 64  # no-break spaces fixed line by line; more are replaced all at once
_SURROGATE = re.compile("[\udc80-\udcff]")
_MARK_LEAD_BYTES = (b"\xcc", b"\xcd")  # UTF-8 lead bytes of U+0300-U+037F


def _marked_lines(data: bytes) -> Iterator[bytes]:
    """Each line of ``data`` that holds a byte of ``_MARK_LEAD_BYTES``, in order.

    Linear: each lead byte's next occurrence is looked for again only once the scan
    has passed it, so no byte is searched twice for the same lead (a lead byte that
    never occurs is not searched for to the end once per marked line), and a line's
    ends are looked for within that line alone."""
    ahead = {lead: data.find(lead) for lead in _MARK_LEAD_BYTES}
    pos = 0
    while True:
        for lead, at in tuple(ahead.items()):
            if 0 <= at < pos:
                ahead[lead] = data.find(lead, pos)
        found = [at for at in ahead.values() if at >= 0]
        if not found:
            return
        at = min(found)
        start = data.rfind(b"\n", pos, at) + 1  # data[pos] is the last line's \n
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        yield data[start:end]
        pos = end


def _is_line(text: str, start: int, end: int) -> bool:
    return (start == 0 or text[start - 1] == "\n") and (end == len(text) or text[end] == "\n")


def _line_spans(text: str, data: bytes, spaces: bool = True) -> set[tuple[int, int]] | None:
    """Character spans of the lines that need composing or hold a U+FEFF or a no-break
    space; ``None`` when too many lines hold no-break spaces to fix them one by one."""
    spans: set[tuple[int, int]] = set()
    cursor = 0
    for raw in _marked_lines(data):
        line = raw.decode("utf-8", "surrogateescape")
        if not spaces:  # they were replaced in ``text`` already
            for space in _SPACES:
                line = line.replace(space, " ")
        at = text.find(line, cursor)
        while at >= 0 and not _is_line(text, at, at + len(line)):
            at = text.find(line, at + 1)
        if at >= 0:
            spans.add((at, at + len(line)))
            cursor = at + len(line)
    for char in ("\ufeff", *_SPACES):
        at = text.find(char)
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            spans.add((start, end))
            if len(spans) > _FEW and char != "\ufeff":
                return None
            at = text.find(char, end)
    return spans


def _clean_line(line: str) -> str:
    plain = line.replace("\ufeff", "")
    for space in _SPACES:
        plain = plain.replace(space, " ")
    fixed = unicodedata.normalize("NFC", plain)
    if len(fixed) > len(plain):  # composition exclusions can lengthen; keep the line as is
        fixed = plain
    return fixed + " " * (len(line) - len(fixed))


def normalise(text: str, data: bytes, lossy: bool = False) -> str:
    """The copy of ``text`` (``data`` decoded) that patterns see; see the module doc."""
    if text.isascii():
        return text
    if (
        "\ufeff" in text
        or any(space in text for space in _SPACES)
        or any(lead in data for lead in _MARK_LEAD_BYTES)
    ):
        spans = _line_spans(text, data)
        if spans is None:  # many no-break spaces: replace them all, then fix the other lines
            for space in _SPACES:
                text = text.replace(space, " ")
            spans = _line_spans(text, data, spaces=False)
        pieces: list[str] = []
        done = 0
        for start, end in sorted(spans or ()):
            pieces += [text[done:start], _clean_line(text[start:end])]
            done = end
        text = "".join([*pieces, text[done:]])
    if lossy:
        text = _SURROGATE.sub("\ufffd", text)
    return text


@dataclass(frozen=True, slots=True)
class Source:
    """The stored bytes, decoded losslessly, and the normalised copy patterns see."""

    data: bytes
    decoded: str
    text: str

    @classmethod
    def of(cls, data: bytes) -> Source:
        try:
            decoded, lossy = data.decode("utf-8"), False
        except UnicodeDecodeError:
            decoded, lossy = data.decode("utf-8", "surrogateescape"), True
        return cls(data=data, decoded=decoded, text=normalise(decoded, data, lossy))

    def byte_offsets(self, starts: Sequence[int]) -> list[int]:
        """The byte offsets of ascending character offsets of the decoded text."""
        data, decoded = self.data, self.decoded
        if len(data) == len(decoded):
            return list(starts)
        offsets: list[int] = []
        char = byte = 0
        if (len(data) - len(decoded)) * 8 < len(decoded):  # mostly one byte per character
            for start in starts:
                byte += len(decoded[char:start].encode("utf-8", "surrogateescape"))
                char = start
                offsets.append(byte)
            return offsets
        ends = list(accumulate(map(len, data.split(b"\n")), initial=0))
        line = 0
        for start in starts:
            line += decoded.count("\n", char, start)
            char = start
            offsets.append(ends[line] + line)
        return offsets
