"""A discoverer seeded with N candidates, and the source text they describe (for tests)."""

from __future__ import annotations

from collections.abc import Sequence

from cutter.core.records import Candidate


class InMemoryDiscoverer:
    """Returns the candidates it was seeded with, whatever bytes it is shown."""

    def __init__(self, source: bytes, candidates: Sequence[Candidate]) -> None:
        self.source = source
        self.candidates = tuple(candidates)
        self.calls = 0

    @classmethod
    def seeded(cls, n_candidates: int = 12) -> InMemoryDiscoverer:
        """A source of ``n_candidates`` articles and one candidate per article."""
        parts: list[bytes] = []
        candidates: list[Candidate] = []
        offset = 0
        for number in range(1, n_candidates + 1):
            text = (
                f"Article {number}\n\nThe text of article {number}, "
                f"with ünïcode and enough words to be a body.\n\n"
            ).encode()
            parts.append(text)
            candidates.append(
                Candidate(label=f"Article {number}", start=offset, end=offset + len(text))
            )
            offset += len(text)
        return cls(b"".join(parts), candidates)

    def discover(self, data: bytes) -> Sequence[Candidate]:
        self.calls += 1
        return self.candidates
