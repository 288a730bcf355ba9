"""What the revert and restore tests share: a world of one document on real stores
(the embedded SQLite database, or PostgreSQL), walked through both gates with
approvals written as ``tests._harness.write_approval`` writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode, enable_execution, execution_enabled
from cutter.core.ports import KnowledgeBase, RunStore
from cutter.core.records import IURow
from cutter.core.route import Gate
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.walk.runner import Runner, RunnerConfig
from tests._harness import OPERATOR, REVIEWER, write_approval

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (ROOT / "cutter" / "samples" / "garden-charter.md").read_bytes()
DOC = "charter"


def edition(n: int) -> bytes:
    """The sample, changed in its last unit: another version of the same document."""
    return SAMPLE + f"\n<!-- edition {n} -->\n".encode()


@dataclass
class _Approver:
    """What ``write_approval`` reads of a rig."""

    run_store: RunStore
    kb: KnowledgeBase

    def clock(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class World:
    runner: Runner
    config: RunnerConfig

    @property
    def approver(self) -> Any:
        return _Approver(self.config.run_store, self.config.kb)

    async def publish(self, data: bytes) -> str:
        version = await self.config.target.sources.publish(DOC, data)  # type: ignore[attr-defined]
        return str(version.sv_id)

    async def rows(self) -> list[IURow]:
        return await self.config.target.ius.rows(DOC)

    async def approve(
        self, sc: Sidecar, gate: Gate, *, by: str = REVIEWER, decision: Decision = Decision.APPROVE
    ) -> Sidecar:
        fields: dict[str, Any] = {"approver": by, "decision": decision}
        if gate is Gate.SG_2:
            fields["review_decision_id"] = f"review-{sc.run_id}"
        kb_id = await write_approval(self.approver, sc.run_id, gate, **fields)
        return await self.runner.resume(sc.run_id, kb_id)

    async def through(self, sc: Sidecar) -> Sidecar:
        """A run at SG_1 approved at both gates: where it ends."""
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION, sc.stop
        sc = await self.approve(sc, Gate.SG_1)
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
        return await self.approve(sc, Gate.SG_2)

    async def cut(self, mode: Mode = Mode.LIVE) -> Sidecar:
        sc = await self.through(await self.runner.cut(DOC, mode, started_by=OPERATOR))
        assert sc.state is RunState.CLOSEOUT_REPORTED, sc.stop
        return sc

    async def revert(self, run_id: str, mode: Mode = Mode.LIVE) -> Sidecar:
        sc = await self.through(await self.runner.revert(run_id, mode, started_by=OPERATOR))
        assert sc.state is RunState.CLOSEOUT_REPORTED, sc.stop
        return sc


def live() -> None:
    enable_execution()


async def _world_do(state_dir: Path, work: Any) -> Any:
    from cutter.assembly.embedded import embedded_config

    # Called by module-scoped fixtures too, outside the per-test restore of the
    # switch (tests/conftest.py): leave it as found.
    before = execution_enabled()
    live()
    try:
        async with embedded_config(state_dir) as config, Runner(config) as runner:
            return await work(World(runner, config))
    finally:
        enable_execution(before)


def in_world(state_dir: Path, work: Any) -> Any:
    """``work(world)`` on the embedded stores of ``state_dir``, from synchronous code
    (a test that runs a CLI or a child process between two looks at the stores)."""
    return anyio.run(_world_do, state_dir, work)
