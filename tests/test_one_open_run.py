"""One open run per document through the runner: a second start of a document whose run
waits at a gate is refused with STOP_DOCUMENT_BUSY naming that run, before anything is
written (no run, no KB doc); the run's end (abort, rejection, closeout) frees it. On the
file run store (the harness) and the in-memory one; the store contract itself is in
``tests/pg/test_open_runs.py`` and the daemons on one database in
``tests/pg/test_daemon_pg.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cutter import Mode, RunState
from cutter.core.errors import DocumentBusy
from cutter.stores.memory.records import InMemoryRunStore
from cutter.stores.memory.target import InMemorySources
from cutter.walk.runner import Runner
from tests._harness import (
    DOC_ID,
    OPERATOR,
    Rig,
    build_runner,
    seed_discoverer,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio

OTHER_DOC = "doc-other"


def rig_on(tmp_path: Path, store: str) -> Rig:
    disc = seed_discoverer(12)
    sources = InMemorySources()
    for doc_id in (DOC_ID, OTHER_DOC):
        sources.seed(doc_id, disc.source, sv_id=f"sv-{doc_id}-v1")
    rig = build_runner(tmp_path, disc=disc, sources=sources)
    if store == "file":
        return rig
    memory = InMemoryRunStore()
    runner = Runner(dataclasses.replace(rig.runner.config, run_store=memory))
    return dataclasses.replace(rig, runner=runner, run_store=memory)


@pytest.fixture(params=["file", "memory"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Rig:
    return rig_on(tmp_path, request.param)


async def assert_busy(rig: Rig, holder: str, *docs: str, batch: bool = False) -> None:
    """A start of ``docs`` is refused naming ``holder`` and writes nothing."""
    runs, kb = await rig.run_store.run_ids(), await rig.kb.list("")

    async def start() -> object:
        if batch:
            return await rig.runner.cut_batch(list(docs), started_by=OPERATOR)
        return await rig.runner.cut(docs[0], started_by=OPERATOR)

    with pytest.raises(DocumentBusy) as busy:
        await start()
    assert busy.value.code == "STOP_DOCUMENT_BUSY"
    assert holder in busy.value.message
    assert await rig.run_store.run_ids() == runs
    assert await rig.kb.list("") == kb


async def test_a_second_start_while_the_first_waits_at_sg1_is_refused(rig: Rig) -> None:
    async with rig.runner:
        first = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        assert first.state is RunState.AWAITING_CUT_AUTHORIZATION
        await assert_busy(rig, first.run_id, DOC_ID)
        other = await rig.runner.cut(OTHER_DOC, started_by=OPERATOR)  # another doc is free
        assert other.state is RunState.AWAITING_CUT_AUTHORIZATION

        # At SG_2 too, then the abort frees the document.
        at_sg2 = await rig.runner.resume(first.run_id, await write_sg1_approval(rig, first.run_id))
        assert at_sg2.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        await assert_busy(rig, first.run_id, DOC_ID)
        aborted = await rig.runner.abort(first.run_id, reason="superseded", by=OPERATOR)
        assert aborted.state is RunState.ABORTED
        second = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        assert second.state is RunState.AWAITING_CUT_AUTHORIZATION
        await assert_busy(rig, second.run_id, DOC_ID)

        # A run that closes frees the document as well.
        sc = await rig.runner.resume(second.run_id, await write_sg1_approval(rig, second.run_id))
        sc = await rig.runner.resume(sc.run_id, await write_sg2_approval(rig, sc.run_id))
        assert sc.state is RunState.CLOSEOUT_REPORTED
        third = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        assert third.state is RunState.AWAITING_CUT_AUTHORIZATION


async def test_a_batch_naming_a_held_or_repeated_document_starts_no_run(rig: Rig) -> None:
    async with rig.runner:
        await assert_busy(rig, "named twice", OTHER_DOC, DOC_ID, OTHER_DOC, batch=True)
        assert await rig.run_store.run_ids() == []
        holder = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        await assert_busy(rig, holder.run_id, OTHER_DOC, DOC_ID, batch=True)
        assert await rig.run_store.run_ids() == [holder.run_id]


async def test_an_opened_run_holds_its_document_until_it_is_walked_and_ends(
    rig: Rig,
) -> None:
    """``Runner.open``, what the daemon answers a background start with."""
    async with rig.runner:
        opened = await rig.runner.open(DOC_ID, Mode.DRY_RUN, started_by=OPERATOR)
        assert opened.state is RunState.CREATED
        assert (await rig.runner.status(opened.run_id)).state is RunState.CREATED
        await assert_busy(rig, opened.run_id, DOC_ID)
        with pytest.raises(DocumentBusy, match=opened.run_id):
            await rig.runner.open(DOC_ID, started_by=OPERATOR)
        walked = await rig.runner.resume(opened.run_id)
        assert walked.state is RunState.AWAITING_CUT_AUTHORIZATION
        await rig.runner.abort(opened.run_id, reason="done looking", by=OPERATOR)
        assert (await rig.runner.open(DOC_ID, started_by=OPERATOR)).state is RunState.CREATED
