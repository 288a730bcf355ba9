"""What a phase body gets: the run's sidecar and the services it may use."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from cutter.core.canonical import sha256_hex
from cutter.core.errors import StopVerifyFailed
from cutter.core.hook_events import NO_HOOKS
from cutter.core.kbdocs import PhaseDoc
from cutter.core.ports import Discoverer, GateVerifier, GrantProbe, Hooks, KnowledgeBase, Target
from cutter.core.records import Candidate, Manifest
from cutter.core.restoring import RestorePlan
from cutter.core.route import Phase, Pin, PinValue
from cutter.core.sidecar import Sidecar
from cutter.runtime.offloop import off_loop
from cutter.walk.phases.checked import CheckedInputs
from cutter.walk.phases.readback import ReadBacks

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Services:
    """The ports a walk segment uses; ``target`` is a sandbox in a dry run.

    ``gates`` judges a gate again before a phase writes (``cutter.walk.gate_check``):
    the phases that write call it, never trusting the sidecar's record of the gate.
    ``readbacks`` carries structural_verify's read-back to write_verify within the
    segment (``cutter.walk.phases.readback``), ``checked`` the plan and source bytes a
    phase checked against the pins to the segment's later phases
    (``cutter.walk.phases.checked``): a segment gets its own ``Services``. ``hooks``
    runs the hooks of the run's events (``cutter.walk.hooks``)."""

    target: Target
    kb: KnowledgeBase
    discoverer: Discoverer
    grants: GrantProbe
    clock: Clock
    gates: GateVerifier
    hooks: Hooks = NO_HOOKS
    readbacks: ReadBacks = field(default_factory=ReadBacks)
    checked: CheckedInputs = field(default_factory=CheckedInputs)


@dataclass(frozen=True, slots=True)
class PhaseOutput:
    pins: dict[Pin, PinValue]
    note: str = ""
    candidates: tuple[Candidate, ...] = ()
    manifest: Manifest | None = None
    restore_plan: RestorePlan | None = None


@dataclass(frozen=True, slots=True)
class PhaseContext:
    sidecar: Sidecar
    services: Services
    replay: bool = False  # a dry run's replay of an earlier segment's write
    _cache: dict[str, object] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.sidecar.run_id

    def pin_str(self, pin: Pin) -> str:
        return str(self.sidecar.pins[pin])

    async def source_bytes(self) -> bytes:
        """The pinned source version's bytes, checked against the pinned sha (once per
        walk segment: ``cutter.walk.phases.checked``)."""
        sv_id, sha = self.pin_str(Pin.SOURCE_VERSION_ID), self.pin_str(Pin.SOURCE_SHA)
        checked = self.services.checked
        data = checked.source(sv_id, sha)
        if data is None:
            data = await self.services.target.sources.content(sv_id)
            if await off_loop(sha256_hex, data, size=len(data)) != sha:
                raise StopVerifyFailed("source bytes no longer match the pinned source_sha")
            checked.keep_source(sv_id, sha, data)
        return data

    async def manifest(self) -> Manifest:
        """The cut plan from the cutplan phase doc, checked against the pinned digest
        (once per walk segment: ``cutter.walk.phases.checked``).

        Its digest is then the pin: a body uses the pin rather than taking the digest
        (2 ms for 10,000 IUs) again."""
        kb_id, digest = (
            self.sidecar.phase_docs.get(Phase.CUTPLAN),
            self.pin_str(Pin.MANIFEST_DIGEST),
        )
        checked = self.services.checked
        manifest = None if kb_id is None else checked.manifest(kb_id, digest)
        if manifest is None:
            manifest = await load_manifest(self.services.kb, self.sidecar)
            if manifest is None or manifest_digest(manifest) != digest:
                raise StopVerifyFailed("stored manifest does not match the pinned manifest_digest")
            if kb_id is not None:
                checked.keep_manifest(kb_id, digest, manifest)
        return manifest


# Digests taken by ``manifest_digest``, by the identity of the manifest object, each
# entry holding the object so that its id is not reused while it is remembered.
_DIGESTS: OrderedDict[int, tuple[Manifest, str]] = OrderedDict()
_DIGESTS_KEPT = 4


def manifest_digest(manifest: Manifest) -> str:
    """``manifest.digest``, taken once per manifest object.

    A ``Manifest`` is immutable all the way down (frozen structs of strings, numbers
    and tuples), so an object's digest never changes. A KB that hands back the object
    it decoded before (``PgKnowledgeBase``, once the server says the stored bytes
    hash as before) then costs no second canonical encoding; any other object (a
    fresh decode, a changed doc) has its digest taken."""
    entry = _DIGESTS.get(id(manifest))
    if entry is not None and entry[0] is manifest:
        _DIGESTS.move_to_end(id(manifest))
        return entry[1]
    value = manifest.digest
    _DIGESTS[id(manifest)] = (manifest, value)
    while len(_DIGESTS) > _DIGESTS_KEPT:
        _DIGESTS.popitem(last=False)
    return value


async def load_manifest(kb: KnowledgeBase, sidecar: Sidecar) -> Manifest | None:
    kb_id = sidecar.phase_docs.get(Phase.CUTPLAN)
    if kb_id is None:
        return None
    try:
        doc = await kb.get(kb_id)
    except KeyError:
        return None
    return doc.manifest if isinstance(doc, PhaseDoc) else None


PhaseBody = Callable[[PhaseContext], Awaitable[PhaseOutput]]
