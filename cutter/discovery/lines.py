"""The line-anchored heading discoverer the first releases used (kept until its callers
move to ``TextDiscoverer``): each line matching the unit pattern starts a unit that
runs to the next one; text before the first is the preamble.

Regions are byte offsets into the exact stored bytes and tile them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cutter.records import Candidate

ARTICLE_LINE = rb"^Article [0-9]+[a-z]?\b[^\n]*$"


class LineHeadingDiscoverer:
    def __init__(self, pattern: bytes = ARTICLE_LINE) -> None:
        self.pattern = re.compile(pattern, re.MULTILINE)

    def discover(self, data: bytes) -> Sequence[Candidate]:
        starts = [
            (m.start(), m.group().decode("utf-8", "replace").strip())
            for m in self.pattern.finditer(data)
        ]
        if not starts:
            return ()
        candidates: list[Candidate] = []
        if starts[0][0] > 0:
            candidates.append(
                Candidate(label="preamble", start=0, end=starts[0][0], kind="preamble")
            )
        ends = [s for s, _ in starts[1:]] + [len(data)]
        for (start, label), end in zip(starts, ends, strict=True):
            candidates.append(Candidate(label=label, start=start, end=end))
        return tuple(candidates)
