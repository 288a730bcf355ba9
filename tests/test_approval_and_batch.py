"""Batches of runs, one approval per run and gate, and operator aborts.

Each document of a batch gets its own run, gates and approvals: one approval
never releases two runs, and rejecting one run leaves the others as they were.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

import cutter.core.mode
from cutter import Mode, RunState, StopCode
from cutter.core.errors import (
    MESSAGE_LIMIT,
    ApprovalConsumedAlready,
    ApprovalWrongRun,
    InvalidIdentifier,
    RunNotAbortable,
    RunNotResumable,
)
from cutter.core.kbdocs import ApprovalRefusal, Decision, StopDoc, stop_doc_id
from cutter.core.ledger import CutEnvelope, RollbackEnvelope, verify_chain
from cutter.core.records import WriterGrants
from cutter.core.route import Gate, Pin
from cutter.core.sidecar import Sidecar
from cutter.stores.memory.target import InMemoryIUStore, InMemorySources, StaticGrantProbe
from cutter.walk.runner import Runner
from tests._harness import (
    DOC_ID,
    OLD_ROW,
    OPERATOR,
    REVIEWER,
    Rig,
    build_runner,
    seed_discoverer,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio

BATCH_DOCS = ("doc-charter-a", "doc-charter-b", "doc-charter-c")


def batch_rig(tmp_path: Path) -> Rig:
    """Three documents, the same seeded bytes under three doc and version ids."""
    disc = seed_discoverer(12)
    sources = InMemorySources()
    for doc_id in BATCH_DOCS:
        sources.seed(doc_id, disc.source, sv_id=f"sv-{doc_id}-v1")
    return build_runner(tmp_path, disc=disc, sources=sources)


async def walk_to_closeout(rig: Rig, run_id: str) -> Sidecar:
    sc = await rig.runner.resume(run_id, await write_sg1_approval(rig, run_id))
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    return await rig.runner.resume(run_id, await write_sg2_approval(rig, run_id))


class TestApprovalAndBatch:
    async def test_cut_batch_gives_one_run_per_document(self, tmp_path: Path) -> None:
        rig = batch_rig(tmp_path)
        async with rig.runner:
            runs = await rig.runner.cut_batch(BATCH_DOCS, started_by=OPERATOR)
        assert [sc.doc_id for sc in runs] == list(BATCH_DOCS)
        assert len({sc.run_id for sc in runs}) == 3
        batch_ids = {sc.batch_id for sc in runs}
        assert len(batch_ids) == 1
        assert None not in batch_ids
        for doc_id, sc in zip(BATCH_DOCS, runs, strict=True):
            assert sc.state is RunState.AWAITING_CUT_AUTHORIZATION
            assert sc.stop_code == StopCode.APPROVAL_REQUIRED
            assert sc.started_by == OPERATOR
            assert sc.pins[Pin.SOURCE_VERSION_ID] == f"sv-{doc_id}-v1"
            assert await rig.run_store.load(sc.run_id) == sc
        # Each run has its own gate: its own request digest and nonce.
        gates = [sc.pending_gate for sc in runs]
        assert all(g is not None for g in gates)
        assert len({g.request_digest for g in gates if g}) == 3
        assert len({g.nonce for g in gates if g}) == 3

    async def test_one_runs_approval_never_releases_another(self, tmp_path: Path) -> None:
        rig = batch_rig(tmp_path)
        async with rig.runner:
            a, b, _ = await rig.runner.cut_batch(BATCH_DOCS, started_by=OPERATOR)
            kb_a = await write_sg1_approval(rig, a.run_id)
            with pytest.raises(ApprovalWrongRun):
                await rig.runner.resume(b.run_id, kb_a)
            assert await rig.run_store.load(a.run_id) == a
            assert await rig.run_store.load(b.run_id) == b
            refusals = await rig.kb.list(f"runs/{b.run_id}/refusals")
            assert len(refusals) == 1
            doc = await rig.kb.get(refusals[0])
            assert isinstance(doc, ApprovalRefusal)
            assert doc.code == ApprovalWrongRun.code
            assert await rig.kb.list(f"runs/{a.run_id}/refusals") == []
            assert await rig.run_store.consumed_by(kb_a) is None

            # It still releases its own run, once; then it is spent for everyone.
            a2 = await rig.runner.resume(a.run_id, kb_a)
            assert a2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
            with pytest.raises(ApprovalConsumedAlready):
                await rig.runner.resume(b.run_id, kb_a)
            assert await rig.run_store.load(b.run_id) == b

    async def test_forged_approval_with_another_runs_digest_is_refused(
        self, tmp_path: Path
    ) -> None:
        rig = batch_rig(tmp_path)
        async with rig.runner:
            a, b, _ = await rig.runner.cut_batch(BATCH_DOCS, started_by=OPERATOR)
            gate_a = a.pending_gate
            assert gate_a is not None
            # Names run b but answers run a's request: stale for b.
            forged = await write_sg1_approval(
                rig, b.run_id, request_digest=gate_a.request_digest, nonce=gate_a.nonce
            )
            with pytest.raises(cutter.GateRefusal) as info:
                await rig.runner.resume(b.run_id, forged)
            assert info.value.code == "APPROVAL_STALE"
            assert await rig.run_store.load(a.run_id) == a
            assert await rig.run_store.load(b.run_id) == b

    async def test_approving_each_run_separately_walks_each(self, tmp_path: Path) -> None:
        rig = batch_rig(tmp_path)
        async with rig.runner:
            runs = await rig.runner.cut_batch(BATCH_DOCS, started_by=OPERATOR)
            done = [await walk_to_closeout(rig, sc.run_id) for sc in runs]
        for sc in done:
            assert sc.state is RunState.CLOSEOUT_REPORTED
            assert sc.stop is None
            assert sc.pins[Pin.LIFECYCLE_ENACTED_COUNT] == 12
        used = [u.approval_kb_id for sc in done for g in sc.gates for u in g.uses]
        assert len(used) == len(set(used)) == 6
        for sc in done:
            for gate in sc.gates:
                assert all(
                    u.approval_kb_id.startswith(f"approvals/{sc.run_id}/") for u in gate.uses
                )

    async def test_one_run_rejected_does_not_affect_the_others(self, tmp_path: Path) -> None:
        rig = batch_rig(tmp_path)
        async with rig.runner:
            a, b, c = await rig.runner.cut_batch(BATCH_DOCS, started_by=OPERATOR)
            reject = await write_sg1_approval(rig, b.run_id, decision=Decision.REJECT)
            b2 = await rig.runner.resume(b.run_id, reject)
            assert b2.state is RunState.REJECTED
            assert b2.stop_code == StopCode.APPROVAL_REJECTED
            assert await rig.run_store.load(a.run_id) == a
            assert await rig.run_store.load(c.run_id) == c
            a2 = await walk_to_closeout(rig, a.run_id)
            c2 = await rig.runner.resume(c.run_id, await write_sg1_approval(rig, c.run_id))
        assert a2.state is RunState.CLOSEOUT_REPORTED
        assert c2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        assert (await rig.run_store.load(b.run_id)) == b2

    async def test_runs_lists_every_run_with_its_state(self, tmp_path: Path) -> None:
        rig = batch_rig(tmp_path)
        async with rig.runner:
            a, b, c = await rig.runner.cut_batch(BATCH_DOCS, started_by=OPERATOR)
            await rig.runner.resume(
                b.run_id, await write_sg1_approval(rig, b.run_id, decision=Decision.REJECT)
            )
            await rig.runner.resume(c.run_id, await write_sg1_approval(rig, c.run_id))
            listed = await rig.runner.runs()
        assert {sc.run_id: sc.state for sc in listed} == {
            a.run_id: RunState.AWAITING_CUT_AUTHORIZATION,
            b.run_id: RunState.REJECTED,
            c.run_id: RunState.AWAITING_LIFECYCLE_AUTHORIZATION,
        }
        assert {sc.batch_id for sc in listed} == {a.batch_id}
        waiting = {sc.run_id: sc.pending_gate for sc in listed if sc.pending_gate}
        assert {run_id: g.gate for run_id, g in waiting.items()} == {
            a.run_id: Gate.SG_1,
            c.run_id: Gate.SG_2,
        }
        # "since when": the gate records when it opened.
        assert all(g.opened_at is not None for g in waiting.values())

    @pytest.mark.parametrize("hostile", ["../x", "a/b", "\x00", "x" * 300, ""])
    async def test_batch_with_a_hostile_doc_id_starts_no_run(
        self, tmp_path: Path, hostile: str
    ) -> None:
        rig = batch_rig(tmp_path)
        async with rig.runner:
            with pytest.raises(InvalidIdentifier):
                await rig.runner.cut_batch([BATCH_DOCS[0], hostile, BATCH_DOCS[1]])
            assert await rig.runner.runs() == []
        assert await rig.run_store.run_ids() == []
        assert rig.stored() == rig.fresh

    # --- abort ----------------------------------------------------------------------------
    async def test_abort_at_sg1(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            aborted = await rig.runner.abort(sc.run_id, reason="wrong document", by=OPERATOR)
            with pytest.raises(RunNotResumable):
                await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert aborted.state is RunState.ABORTED
        assert aborted.stop_code == StopCode.OPERATOR_ABORT == "STOP_OPERATOR_ABORT"
        assert aborted.stop is not None
        assert OPERATOR in aborted.stop.message
        assert await rig.run_store.load(sc.run_id) == aborted
        stop = await rig.kb.get(stop_doc_id(sc.run_id))
        assert isinstance(stop, StopDoc)
        assert stop.code is StopCode.OPERATOR_ABORT

    async def test_abort_of_a_finished_run_is_refused(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            done = await walk_to_closeout(rig, sc.run_id)
            assert done.state is RunState.CLOSEOUT_REPORTED
            with pytest.raises(RunNotAbortable):
                await rig.runner.abort(sc.run_id, reason="too late", by=OPERATOR)
        assert await rig.run_store.load(sc.run_id) == done

    async def test_abort_of_an_aborted_run_is_refused(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            aborted = await rig.runner.abort(sc.run_id, reason="first", by=OPERATOR)
            with pytest.raises(RunNotAbortable):
                await rig.runner.abort(sc.run_id, reason="second", by=REVIEWER)
        assert await rig.run_store.load(sc.run_id) == aborted

    async def test_abort_at_sg2_of_a_live_run_rolls_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
        rig = build_runner(tmp_path, store=InMemoryIUStore([OLD_ROW]))
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, Mode.LIVE, started_by=OPERATOR)
            sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
            assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
            assert len(await rig.store.rows(DOC_ID)) == 13
            aborted = await rig.runner.abort(sc.run_id, reason="source is wrong", by=OPERATOR)
        assert aborted.state is RunState.ABORTED
        assert aborted.stop_code == StopCode.OPERATOR_ABORT
        assert await rig.store.rows(DOC_ID) == [OLD_ROW]
        entries = await rig.ledger.entries()
        verify_chain(entries)
        assert [type(e.envelope) for e in entries] == [CutEnvelope, RollbackEnvelope]
        rollback = entries[-1].envelope
        assert isinstance(rollback, RollbackEnvelope)
        assert rollback.run_id == sc.run_id
        assert rollback.backup_id == sc.pins[Pin.BACKUP_ID]

    async def test_abort_with_a_hostile_identity_is_refused(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            with pytest.raises(InvalidIdentifier):
                await rig.runner.abort(sc.run_id, reason="x", by="../root")
        assert await rig.run_store.load(sc.run_id) == sc

    async def test_abort_reason_becomes_a_one_line_stop_message(self, tmp_path: Path) -> None:
        rig = build_runner(tmp_path)
        reason = "wrong document\nsecond line\r\n\tthird " + "x" * 1000
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
            aborted = await rig.runner.abort(sc.run_id, reason=reason, by=OPERATOR)
        assert aborted.state is RunState.ABORTED
        assert aborted.stop is not None
        stop = await rig.kb.get(stop_doc_id(sc.run_id))
        assert isinstance(stop, StopDoc)
        for message in (aborted.stop.message, stop.message):
            assert message.startswith(f"aborted by {OPERATOR}: wrong document")
            assert "\n" not in message
            assert "\r" not in message
            assert len(message) <= MESSAGE_LIMIT


class HeldProbe:
    """A grant probe that holds every caller until released, counting them; ``full``
    is set once ``capacity`` callers are inside at the same time."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.inside = 0
        self.most_inside = 0
        self.full = anyio.Event()
        self.release = anyio.Event()

    async def writer_grants(self) -> WriterGrants:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        if self.inside == self.capacity:
            self.full.set()
        try:
            await self.release.wait()
        finally:
            self.inside -= 1
        return await StaticGrantProbe().writer_grants()


async def test_a_batch_walks_at_most_max_walking_segments_at_once(tmp_path: Path) -> None:
    """Synchronised on events only: two walks are inside the held probe when ``full``
    is set, and the third, started in the same batch before either walk took its
    second step, is by then queued for a walking slot, where it stays until a walk
    ends. (``wait_all_tasks_blocked`` counted a walk waiting on a store thread as
    blocked, so on a loaded machine it returned before the walks reached the probe.)"""
    rig = batch_rig(tmp_path)
    probe = HeldProbe(capacity=2)
    runner = Runner(dataclasses.replace(rig.runner.config, grants=probe, max_walking=2))
    results: list[Sidecar] = []

    async def batch() -> None:
        results.extend(await runner.cut_batch(BATCH_DOCS, started_by=OPERATOR))

    # The deadline only turns a hang (a limiter that admits fewer than two) into a failure.
    with anyio.fail_after(60):
        async with runner, anyio.create_task_group() as tg:
            tg.start_soon(batch)
            await probe.full.wait()
            assert runner._walking is not None
            slots = runner._walking.statistics()
            assert (slots.borrowed_tokens, slots.tasks_waiting) == (2, 1)
            assert probe.inside == 2
            assert len(await rig.run_store.run_ids()) == 2  # the third run does not exist yet
            probe.release.set()
    assert probe.most_inside == 2
    assert [sc.state for sc in results] == [RunState.AWAITING_CUT_AUTHORIZATION] * 3
    assert runner._locks == {}  # no per-run state is left behind


async def test_max_walking_below_one_is_refused(tmp_path: Path) -> None:
    rig = batch_rig(tmp_path)
    runner = Runner(dataclasses.replace(rig.runner.config, max_walking=0))
    with pytest.raises(ValueError, match="max_walking"):
        await runner.__aenter__()
