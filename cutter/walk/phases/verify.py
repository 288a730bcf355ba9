"""structural_verify and write_verify: read back what leg A wrote and check it.

One read-back serves both within a walk segment (``cutter.walk.phases.readback``)."""

from __future__ import annotations

from cutter.core.errors import StopVerifyFailed
from cutter.core.plan import structural_problems, verify_result_id, write_problems
from cutter.core.route import Pin
from cutter.walk.phases.context import PhaseContext, PhaseOutput


async def structural_verify(ctx: PhaseContext) -> PhaseOutput:
    manifest = await ctx.manifest()
    data = await ctx.source_bytes()
    change_set_id = ctx.pin_str(Pin.CHANGE_SET_ID)
    rows = tuple(await ctx.services.target.ius.change_set(change_set_id))
    problems = structural_problems(manifest, rows, data)
    if problems:
        raise StopVerifyFailed("structural verify: " + "; ".join(problems[:3]))
    ctx.services.readbacks.keep(change_set_id, rows)
    return PhaseOutput(
        pins={Pin.STRUCTURAL_VERIFIED: True},
        note=f"{len(rows)} IUs tile {len(data)} source bytes exactly",
    )


async def write_verify(ctx: PhaseContext) -> PhaseOutput:
    manifest = await ctx.manifest()
    change_set_id = ctx.pin_str(Pin.CHANGE_SET_ID)
    rows = ctx.services.readbacks.take(change_set_id)
    if rows is None:
        rows = tuple(await ctx.services.target.ius.change_set(change_set_id))
    problems = write_problems(manifest, rows)
    if problems:
        raise StopVerifyFailed("write verify: " + "; ".join(problems[:3]))
    return PhaseOutput(
        pins={Pin.VERIFY_RESULT_ID: verify_result_id(change_set_id, rows)},
        note=f"{len(rows)} IUs read back equal the plan",
    )
