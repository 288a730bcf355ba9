"""The pinned inputs a walk segment's phases read and checked, kept for its later phases.

``PhaseContext.manifest()`` and ``source_bytes()`` read the cut plan and the source
bytes from the stores and check them against the run's pins (the manifest digest,
the source sha). A phase acts only on what passed that check. Within one walk
segment the first phase to ask reads and checks; the later phases of the segment
are given the same checked object instead of reading the same megabytes again (the
cut plan of 10,000 IUs is 2.3 MB, hashed by the server on each read, four times
between SG_1 and SG_2). So no phase ever acts on a plan or bytes other than the
pinned ones. A stored plan or source changed after the check is not acted on, and
is found where drift is looked for: the gates re-read both, fresh, before consuming
an approval (``cutter.walk.observe``). A segment gets its own ``Services``, so a resume
(another segment, perhaps another process) reads and checks again; a paused run
holds nothing.
"""

from __future__ import annotations

from cutter.core.records import Manifest


class CheckedInputs:
    """The cut plan and source bytes this segment checked, by what they were checked
    against (the plan's KB id and pinned digest; the version id and pinned sha)."""

    __slots__ = ("_manifest", "_source")

    def __init__(self) -> None:
        self._manifest: tuple[tuple[str, str], Manifest] | None = None
        self._source: tuple[tuple[str, str], bytes] | None = None

    def manifest(self, kb_id: str, digest: str) -> Manifest | None:
        held = self._manifest
        return held[1] if held is not None and held[0] == (kb_id, digest) else None

    def keep_manifest(self, kb_id: str, digest: str, manifest: Manifest) -> None:
        self._manifest = ((kb_id, digest), manifest)

    def source(self, sv_id: str, sha: str) -> bytes | None:
        held = self._source
        return held[1] if held is not None and held[0] == (sv_id, sha) else None

    def keep_source(self, sv_id: str, sha: str, data: bytes) -> None:
        self._source = ((sv_id, sha), data)
