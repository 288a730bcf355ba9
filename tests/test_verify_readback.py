"""One read-back of the change set serves both verify phases of a walk segment
(``cutter.walk.phases.readback``), and each verify still checks what the store holds,
not what leg A sent."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

import cutter.core.mode
from cutter import Mode, RunState, StopCode
from cutter.core.plan import verify_result_id
from cutter.core.records import IURow, IUState
from cutter.core.route import Phase
from cutter.core.sidecar import Sidecar
from cutter.stores.memory.target import InMemoryIUStore
from cutter.walk.phases.readback import ReadBacks
from tests._harness import DOC_ID, OPERATOR, build_runner, write_sg1_approval

pytestmark = pytest.mark.anyio


class CountingIUStore(InMemoryIUStore):
    """Counts the change set read-backs that found rows (leg A's own check before
    its first write finds none)."""

    def __init__(self) -> None:
        super().__init__()
        self.read_backs = 0

    async def change_set(self, change_set_id: str) -> list[IURow]:
        rows = await super().change_set(change_set_id)
        self.read_backs += bool(rows)
        return rows


class RelabellingIUStore(InMemoryIUStore):
    """Stores row 3 with another label than leg A sent: the stored rows still tile
    and reproduce the source (structural verify passes), but one differs from the plan."""

    async def write_staged(self, rows: Sequence[IURow]) -> int:
        changed = [
            msgspec.structs.replace(r, label="Article 99") if r.ordinal == 3 else r for r in rows
        ]
        return await super().write_staged(changed)


async def walk_to_sg2(tmp_path: Path, store: InMemoryIUStore) -> Sidecar:
    """A live run of the seeded document, approved at SG_1: where it stops next."""
    rig = build_runner(tmp_path, store=store)
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
        assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
        return await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))


class TestOneReadBack:
    async def test_the_verify_phases_of_one_segment_read_the_change_set_back_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        store = CountingIUStore()
        sc = await walk_to_sg2(tmp_path, store)
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert Phase.WRITE_VERIFY in sc.phases_passed
        assert store.read_backs == 1  # structural_verify's, handed to write_verify

    async def test_write_verify_checks_the_stored_rows_not_what_leg_a_sent(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        sc = await walk_to_sg2(tmp_path, RelabellingIUStore())
        assert sc.state is RunState.FAILED
        assert sc.stop is not None
        assert sc.stop.code is StopCode.VERIFY_FAILED
        assert "write verify: IU 3 differs from the plan" in sc.stop.message
        assert Phase.STRUCTURAL_VERIFY in sc.phases_passed


def row(ordinal: int, state: IUState = IUState.STAGED, change_set_id: str = "cs-1") -> IURow:
    body = f"Article {ordinal + 1}.".encode()
    return IURow(
        iu_id=f"iu-{ordinal}",
        doc_id=DOC_ID,
        sv_id="sv-1",
        ordinal=ordinal,
        label=f"Article {ordinal + 1}",
        kind="unit",
        start=ordinal * 10,
        end=ordinal * 10 + len(body),
        region_sha=hashlib.sha256(body).hexdigest(),
        body=body,
        state=state,
        change_set_id=change_set_id,
    )


class TestReadBacks:
    def test_rows_are_handed_over_once(self) -> None:
        kept = ReadBacks()
        rows = (row(0), row(1))
        kept.keep("cs-1", rows)
        assert kept.take("cs-1") == rows
        assert kept.take("cs-1") is None

    def test_rows_of_another_change_set_are_not_handed_over(self) -> None:
        kept = ReadBacks()
        kept.keep("cs-1", (row(0),))
        assert kept.take("cs-2") is None
        assert kept.take("cs-1") is None  # dropped, not held for later

    def test_nothing_kept_is_none(self) -> None:
        assert ReadBacks().take("cs-1") is None


def test_verify_result_id_is_the_documented_digest_of_each_rows_line() -> None:
    """Runs paused at SG_2 carry this id as a pin: its text must not change."""
    rows = [row(0, IUState.STAGED), row(1, IUState.ACTIVE), row(2, IUState.SUPERSEDED)]
    lines = "\n".join(f"{r.ordinal}\t{r.iu_id}\t{r.region_sha}\t{r.state.value}" for r in rows)
    expected = "vr-" + hashlib.sha256(f"cs-1\n{lines}".encode()).hexdigest()[:32]
    assert verify_result_id("cs-1", rows) == expected
    assert verify_result_id("cs-1", []) == "vr-" + hashlib.sha256(b"cs-1\n").hexdigest()[:32]
