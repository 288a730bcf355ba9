"""source_pin, mark, cutplan: find out what a cut would write, writing nothing.

Discovery and the plan's region hashes run off the event loop (``cutter.runtime.offloop``):
a large document costs its walk time, not every other client's."""

from __future__ import annotations

from cutter.core.doc_size import MAX_DOCUMENT_BYTES
from cutter.core.errors import (
    StopAlreadyCut,
    StopDocumentTooLarge,
    StopDocumentUnknown,
    StopPlanInvalid,
    UnknownDocument,
)
from cutter.core.plan import build_manifest, regions_digest
from cutter.core.records import Candidate, Manifest, SourceVersion
from cutter.core.route import Pin
from cutter.runtime.offloop import discover_off_loop, off_loop
from cutter.walk.phases.context import PhaseContext, PhaseOutput


def _plan(
    version: SourceVersion, data: bytes, candidates: tuple[Candidate, ...], region_sha: str
) -> Manifest:
    if regions_digest(candidates) != region_sha:
        raise StopPlanInvalid("the discoverer is not deterministic: regions differ from mark")
    return build_manifest(version, data, candidates)


async def current_version(ctx: PhaseContext) -> SourceVersion:
    """The run's document's current version, within the document size limit."""
    try:
        version = await ctx.services.target.sources.current(ctx.sidecar.doc_id)
    except UnknownDocument as exc:
        raise StopDocumentUnknown(f"document {ctx.sidecar.doc_id} is not in the KB") from exc
    if version.size > MAX_DOCUMENT_BYTES:  # stored before the limit, or by another tool
        raise StopDocumentTooLarge(
            f"version {version.sv_id} of {version.doc_id} is {version.size} bytes, over the "
            f"{MAX_DOCUMENT_BYTES}-byte document limit"
        )
    return version


def version_pinned(version: SourceVersion) -> PhaseOutput:
    """source_pin's result: the version's id, sha and size."""
    return PhaseOutput(
        pins={
            Pin.SOURCE_VERSION_ID: version.sv_id,
            Pin.SOURCE_SHA: version.sha256,
            Pin.SOURCE_SIZE: version.size,
        },
        note=f"document {version.doc_id} at version {version.sv_id}",
    )


async def source_pin(ctx: PhaseContext) -> PhaseOutput:
    version = await current_version(ctx)
    cut_by = await ctx.services.target.sources.cut_by(version.sv_id)
    if cut_by is not None:
        raise StopAlreadyCut(
            f"version {version.sv_id} of {version.doc_id} was cut by change set {cut_by}; "
            "publish a new version to cut it again"
        )
    return version_pinned(version)


async def mark(ctx: PhaseContext) -> PhaseOutput:
    data = await ctx.source_bytes()
    candidates = await discover_off_loop(ctx.services.discoverer, data)
    if not candidates:
        raise StopPlanInvalid("the discoverer found no units in the source")
    return PhaseOutput(
        pins={Pin.CANDIDATE_COUNT: len(candidates), Pin.REGION_SHA: regions_digest(candidates)},
        note=f"{len(candidates)} candidates marked (dry-run mark snapshot)",
        candidates=candidates,
    )


async def cutplan(ctx: PhaseContext) -> PhaseOutput:
    data = await ctx.source_bytes()
    version = await ctx.services.target.sources.current(ctx.sidecar.doc_id)
    if version.sv_id != ctx.pin_str(Pin.SOURCE_VERSION_ID):
        raise StopPlanInvalid("the document changed version while being planned")
    candidates = await discover_off_loop(ctx.services.discoverer, data)
    region_sha = ctx.pin_str(Pin.REGION_SHA)
    manifest = await off_loop(_plan, version, data, candidates, region_sha, size=len(data))
    return PhaseOutput(
        pins={Pin.MANIFEST_DIGEST: manifest.digest, Pin.IU_COUNT: len(manifest.ius)},
        note=f"{len(manifest.ius)} IUs planned",
        manifest=manifest,
    )
