"""Discovery: the candidates of a document, the profile that cut it and what looked wrong."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import msgspec

from cutter.core.records import Candidate
from cutter.discovery.combine import Scanner, combine
from cutter.discovery.content import content_warnings
from cutter.discovery.infer import infer
from cutter.discovery.profiles import Profile
from cutter.discovery.scan import Scans
from cutter.discovery.structure import outline
from cutter.discovery.text import Source


class Discovery(msgspec.Struct, frozen=True, kw_only=True):
    """What ``discover`` found: the profile's name, the candidates, and warnings
    (duplicates, gaps or out-of-order numbers, headings skipped after ``stop``, …)."""

    profile: str
    candidates: tuple[Candidate, ...]
    warnings: tuple[str, ...]


def discover(data: bytes, profile: Profile | None = None) -> Discovery:
    """Cut ``data`` into candidates that tile it: preamble, units, trailer.

    ``profile`` ``None`` infers one: ``discover(data)`` is by construction
    ``discover(data, infer_profile(data))``, the inferred profile cut by the same
    code as a given one, from that profile's own scan. Regions are byte offsets
    into ``data`` itself; the same bytes always give the same result.
    """
    source = Source.of(data)
    scans = Scans(source.text)
    chosen = infer(scans) if profile is None else profile
    found = outline(scans(chosen), source.text, _trailer_scanner(chosen))
    size = len(data)
    starts = [hit.start for hit, _ in found.units]
    if found.trailer is not None:
        starts.append(found.trailer)
    offsets = source.byte_offsets(starts)
    trailer = offsets.pop() if found.trailer is not None else size
    while offsets and offsets[-1] >= size:  # a heading on an empty last line: nothing to cut
        offsets.pop()
    warnings = content_warnings(data) + list(found.warnings)
    if not offsets:
        warnings.append(
            "no unit heading found: the whole document is one unit"
            if size
            else "the document is empty: nothing to cut"
        )
        whole = (Candidate(label="document", start=0, end=size),) if size else ()
        return Discovery(profile=chosen.name, candidates=whole, warnings=tuple(warnings))
    candidates: list[Candidate] = []
    if offsets[0] > 0:
        candidates.append(Candidate(label="preamble", start=0, end=offsets[0], kind="preamble"))
    ends = offsets[1:]
    ends.append(trailer)
    for start, end, (hit, path) in zip(offsets, ends, found.units, strict=False):
        candidates.append(
            Candidate(label=hit.label, start=start, end=end, number=hit.number, path=path)
        )
    if trailer < size:
        candidates.append(Candidate(label="trailer", start=trailer, end=size, kind="trailer"))
    return Discovery(profile=chosen.name, candidates=tuple(candidates), warnings=tuple(warnings))


@lru_cache(maxsize=64)
def _trailer_scanner(profile: Profile) -> Scanner | None:
    return None if profile.trailer is None else combine([("trailer", profile.trailer)])


class TextDiscoverer:
    """The ``cutter.core.ports.Discoverer`` of every run: ``discover(data)``, the inferred
    profile, and nothing to configure, so the cut a run records is the cut
    ``cutter plan`` shows for the same bytes."""

    def discover(self, data: bytes) -> Sequence[Candidate]:
        return discover(data).candidates

    def explain(self, data: bytes) -> Discovery:
        return discover(data)
