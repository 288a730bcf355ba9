"""A damaged sovereign request doc is detected, never approved (issue 12 §4).

An approval answers the digest the run recorded, and the gate's request doc is what
a reviewer is shown. On main the gatekeeper never read the doc back: with one byte
of it flipped, 5 of 5 approvals were taken (consumed, the run advanced). Now the
gatekeeper reads it and rehashes its subject before it takes an approval: any flip
of any byte (seeded positions and masks, plus every byte's high bit) is refused
``GATE_REQUEST_DAMAGED``, nothing is consumed, the run is left exactly as it was,
and the review refuses to show the damaged request too. A missing doc likewise.
The same with the PostgreSQL stores: tests/pg/test_request_doc_damage_pg.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cutter.core.errors import GateRefusal, GateRequestDamaged
from cutter.core.states import RunState
from tests._harness import OPERATOR, Rig, build_runner, write_sg1_approval

pytestmark = pytest.mark.anyio


def flips(size: int, seed: int = 1206, n: int = 40) -> list[tuple[int, int]]:
    """(offset, xor mask): ``n`` seeded at random, then every byte's high bit."""
    rng = random.Random(seed)
    drawn = [(rng.randrange(size), rng.randrange(1, 256)) for _ in range(n)]
    return drawn + [(at, 0x80) for at in range(size)]


async def refused_and_unchanged(rig: Rig, run_id: str, approval: str) -> None:
    before = rig.stored_sidecar(run_id)
    with pytest.raises(GateRefusal) as refused:
        await rig.runner.resume(run_id, approval)
    assert refused.value.code == GateRequestDamaged.code, refused.value.message
    assert await rig.run_store.consumed_by(approval) is None
    assert await rig.run_store.consumed_for(run_id) == []
    assert rig.stored_sidecar(run_id) == before


async def test_every_flipped_byte_of_the_request_doc_is_refused(tmp_path: Path) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        sidecar = await rig.runner.cut("doc-charter-001", started_by=OPERATOR)
        assert sidecar.state is RunState.AWAITING_CUT_AUTHORIZATION
        gate = sidecar.pending_gate
        assert gate is not None
        good = rig.stored_kb_doc(gate.request_kb_id)
        assert good is not None
        approval = await write_sg1_approval(rig, sidecar.run_id)
        for at, mask in flips(len(good)):
            damaged = bytearray(good)
            damaged[at] ^= mask
            rig.overwrite_kb_doc(gate.request_kb_id, bytes(damaged))
            await refused_and_unchanged(rig, sidecar.run_id, approval)
            with pytest.raises(GateRequestDamaged):
                await rig.runner.review(sidecar.run_id)
        rig.delete_kb_doc(gate.request_kb_id)
        await refused_and_unchanged(rig, sidecar.run_id, approval)
        # The doc as it was: the same approval is taken, once.
        rig.overwrite_kb_doc(gate.request_kb_id, good)
        after = await rig.runner.resume(sidecar.run_id, approval)
        assert after.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert await rig.run_store.consumed_by(approval) == sidecar.run_id
