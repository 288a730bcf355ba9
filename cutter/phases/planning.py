"""source_pin, mark, cutplan: find out what a cut would write, writing nothing."""

from __future__ import annotations

from cutter.errors import StopAlreadyCut, StopDocumentUnknown, StopPlanInvalid, UnknownDocument
from cutter.phases.context import PhaseContext, PhaseOutput
from cutter.plan import build_manifest, regions_digest
from cutter.walk import Pin


async def source_pin(ctx: PhaseContext) -> PhaseOutput:
    try:
        version = await ctx.services.target.sources.current(ctx.sidecar.doc_id)
    except UnknownDocument as exc:
        raise StopDocumentUnknown(f"document {ctx.sidecar.doc_id} is not in the KB") from exc
    cut_by = await ctx.services.target.sources.cut_by(version.sv_id)
    if cut_by is not None:
        raise StopAlreadyCut(
            f"version {version.sv_id} of {version.doc_id} was cut by change set {cut_by}; "
            "publish a new version to cut it again"
        )
    return PhaseOutput(
        pins={
            Pin.SOURCE_VERSION_ID: version.sv_id,
            Pin.SOURCE_SHA: version.sha256,
            Pin.SOURCE_SIZE: version.size,
        },
        note=f"document {version.doc_id} at version {version.sv_id}",
    )


async def mark(ctx: PhaseContext) -> PhaseOutput:
    data = await ctx.source_bytes()
    candidates = tuple(ctx.services.discoverer.discover(data))
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
    candidates = tuple(ctx.services.discoverer.discover(data))
    if regions_digest(candidates) != ctx.pin_str(Pin.REGION_SHA):
        raise StopPlanInvalid("the discoverer is not deterministic: regions differ from mark")
    manifest = build_manifest(version, data, candidates)
    return PhaseOutput(
        pins={Pin.MANIFEST_DIGEST: manifest.digest, Pin.IU_COUNT: len(manifest.ius)},
        note=f"{len(manifest.ius)} IUs planned",
        manifest=manifest,
    )
