"""The cut plan and the source bytes are read and checked against the pins once per
walk segment (``cutter.walk.phases.checked``): later phases of the segment act on the
same checked objects; another segment reads and checks again."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import cutter.core.mode
from cutter import Mode, RunState
from cutter.core.errors import StopVerifyFailed
from cutter.core.kbdocs import KBDoc, PhaseDoc
from cutter.core.route import Phase
from cutter.stores.memory.target import InMemorySources
from cutter.walk.phases import PhaseContext, Services
from tests._gates import UncheckedGates
from tests._harness import (
    DOC_ID,
    OPERATOR,
    SD_ID,
    SV_ID,
    Rig,
    build_runner,
    seed_discoverer,
    write_sg1_approval,
)

pytestmark = pytest.mark.anyio


class CountingSources(InMemorySources):
    def __init__(self) -> None:
        super().__init__()
        self.contents = 0

    async def content(self, sv_id: str) -> bytes:
        self.contents += 1
        return await super().content(sv_id)


def count_gets(rig: Rig, kb_id: str) -> list[str]:
    """Record every ``get`` of ``kb_id`` from now on (the list grows)."""
    seen: list[str] = []
    get = rig.kb.get

    async def counting(asked: str) -> KBDoc:
        if asked == kb_id:
            seen.append(asked)
        return await get(asked)

    rig.kb.get = counting  # type: ignore[method-assign]
    return seen


def counting_rig(tmp_path: Path) -> tuple[Rig, CountingSources]:
    """A runner over counting sources holding the seeded document."""
    sources = CountingSources()
    sources.seed(DOC_ID, seed_discoverer().source, sv_id=SV_ID, sd_id=SD_ID)
    return build_runner(tmp_path, sources=sources), sources


class TestOncePerSegment:
    async def test_leg_a_to_write_verify_read_the_plan_and_the_source_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig, sources = counting_rig(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
            plan_gets = count_gets(rig, sc.phase_docs[Phase.CUTPLAN])
            sources.contents = 0
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        # The gate's own fresh read before consuming SG_1 (drift), then one read
        # for cut_leg_a, structural_verify, leg_b_record and write_verify together.
        assert len(plan_gets) == 2
        assert sources.contents == 1  # cut_leg_a's; structural_verify is given the same


class TestCheckedAgainstThePins:
    async def phase_context(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> tuple[Rig, PhaseContext]:
        """A run paused at SG_1 and a context over its sidecar, as a segment's phase gets."""
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig, _ = counting_rig(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        return rig, PhaseContext(sc, self.services(rig))

    @staticmethod
    def services(rig: Rig) -> Services:
        config = rig.runner.config
        return Services(
            target=config.target,
            kb=config.kb,
            discoverer=config.discoverer,
            grants=config.grants,
            clock=config.clock,
            gates=UncheckedGates(),
        )

    async def test_a_later_phase_of_the_segment_acts_on_the_plan_checked_before(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rig, ctx = await self.phase_context(tmp_path, monkeypatch)
        planned = await ctx.manifest()
        kb_id = ctx.sidecar.phase_docs[Phase.CUTPLAN]
        doc = await rig.kb.get(kb_id)
        assert isinstance(doc, PhaseDoc)
        assert doc.manifest is not None
        forged = msgspec.structs.replace(doc.manifest, ius=doc.manifest.ius[:-1])
        await rig.kb.put(kb_id, msgspec.structs.replace(doc, manifest=forged))
        # Same segment: the checked plan, never the forged one.
        assert await PhaseContext(ctx.sidecar, ctx.services).manifest() is planned
        # Another segment reads the stored plan and checks it again.
        with pytest.raises(StopVerifyFailed, match="manifest_digest"):
            await PhaseContext(ctx.sidecar, self.services(rig)).manifest()

    async def test_another_segment_checks_the_source_bytes_again(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rig, ctx = await self.phase_context(tmp_path, monkeypatch)
        data = await ctx.source_bytes()
        rig.sources._content[SV_ID] = data.upper()  # changed in place, same version id
        assert await PhaseContext(ctx.sidecar, ctx.services).source_bytes() is data
        with pytest.raises(StopVerifyFailed, match="source_sha"):
            await PhaseContext(ctx.sidecar, self.services(rig)).source_bytes()
