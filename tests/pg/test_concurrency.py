"""Concurrency on PostgreSQL: one approval consumed by racing processes advances its run
once; one walk per document at a time, refused with the holder named. Synchronised on
pipes and events, never on sleeps."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

import cutter.core.mode
from cutter.assembly.postgres import pg_config
from cutter.core.errors import ApprovalConsumedAlready, DocumentBusy
from cutter.core.ledger import CutEnvelope
from cutter.core.mode import Mode
from cutter.core.ports import GrantProbe, RunStore
from cutter.core.records import WriterGrants
from cutter.core.route import Gate, Phase, Pin
from cutter.core.sidecar import ApprovalUse, Sidecar
from cutter.core.states import RunState
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.walk.locks import InProcessDocumentLocks
from cutter.walk.runner import Runner
from tests._harness import OPERATOR
from tests.pg._walk import DOC_ID, N_IUS, admin_fetch, kb_ids, publish_source, write_approval
from tests.pg.conftest import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[2]
RACES = 5
WAIT_S = 120.0

# One racing process: set up completely (imports, pool, a warm connection), say "ready",
# block on stdin until released, then resume the run with the approval and print the result.
RACER = """
import json, sys
from dataclasses import replace

import anyio

from cutter.core.errors import CutterError
from cutter.runtime.logs import configure_json
from cutter.core.mode import enable_execution
from cutter.assembly.postgres import pg_config
from cutter.walk.runner import Runner
from cutter.walk.locks import InProcessDocumentLocks
from cutter.stores.memory.seeded import InMemoryDiscoverer


async def main(dsn: str, control_dsn: str, run_id: str, approval: str, locks: str) -> int:
    configure_json(sys.stderr)  # stdout is the protocol
    enable_execution()  # this process only: the run it races on is LIVE
    seeded = InMemoryDiscoverer.seeded(12)
    async with pg_config(dsn, seeded, control_dsn=control_dsn) as config:
        if locks == "in-process":  # no lock between the racers: the store step decides alone
            config = replace(config, locks=InProcessDocumentLocks())
        async with Runner(config) as runner:
            return await race(runner, run_id, approval)


async def race(runner: Runner, run_id: str, approval: str) -> int:
    await runner.status(run_id)
    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    try:
        sc = await runner.resume(run_id, approval)
    except CutterError as exc:
        print(json.dumps({"code": exc.code, "message": exc.message}), flush=True)
        return 3
    gate = sc.pending_gate
    print(json.dumps({"state": sc.state.value, "nonce": gate and gate.nonce}), flush=True)
    return 0


sys.exit(anyio.run(main, *sys.argv[1:]))
"""


async def read_line(stream: BufferedByteReceiveStream, log: Path) -> dict[str, Any] | str:
    """The racer's next protocol line; its log if it ended without one."""
    try:
        line = (await stream.receive_until(b"\n", 1 << 16)).decode()
    except (anyio.EndOfStream, anyio.IncompleteRead):
        pytest.fail(f"a racer ended without answering:\n{await anyio.Path(log).read_text()}")
    return line if line == "ready" else json.loads(line)


def kill_if_running(proc: Process) -> None:
    """On a failed test, end a racer this test started (by its own handle) before closing it."""
    if proc.returncode is None:
        proc.kill()


async def race(
    dsns: tuple[str, str], run_id: str, approval: str, locks: str, logs: Sequence[Path]
) -> list[dict[str, Any]]:
    """Two processes resume ``run_id`` with ``approval``, released at the same moment."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    results: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        procs: list[Process] = []
        for log in logs:
            stderr = stack.enter_context(log.open("wb"))
            proc = await stack.enter_async_context(
                await anyio.open_process(
                    [sys.executable, "-c", RACER, *dsns, run_id, approval, locks],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    cwd=REPO,
                    env=env,
                )
            )
            stack.callback(kill_if_running, proc)
            procs.append(proc)
        with anyio.fail_after(WAIT_S):
            readers = []
            for proc, log in zip(procs, logs, strict=True):  # the barrier: set up, blocked
                assert proc.stdout is not None
                reader = BufferedByteReceiveStream(proc.stdout)
                readers.append(reader)
                assert await read_line(reader, log) == "ready"
            for proc in procs:  # released together
                assert proc.stdin is not None
                await proc.stdin.send(b"go\n")
            for proc, reader, log in zip(procs, readers, logs, strict=True):
                result = await read_line(reader, log)
                assert isinstance(result, dict), result
                result["exit"] = await proc.wait()
                results.append(result)
    return results


@pytest.mark.parametrize(
    "locks",
    [
        # pg_config's own document lock: the loser usually finds the document busy
        # (the same run walking in the other process), else the approval spent.
        "pg",
        # no lock between the processes: consumption in the store alone decides.
        "in-process",
    ],
)
async def test_processes_racing_on_one_approval_advance_the_run_exactly_once(
    pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, locks: str
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    disc = InMemoryDiscoverer.seeded(N_IUS)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config,
        Runner(config) as runner,
    ):
        for n in range(RACES):
            doc_id = f"doc-race-{n}"  # a LIVE cut per document: each race has its own rows
            await publish_source(pg_db.admin_dsn, doc_id, disc.source)
            at_sg1 = await runner.cut(doc_id, Mode.LIVE, started_by=OPERATOR)
            assert at_sg1.state is RunState.AWAITING_CUT_AUTHORIZATION
            run_id = at_sg1.run_id
            approval = await write_approval(config.kb, at_sg1)

            logs = [tmp_path / f"race-{n}-{side}.log" for side in "ab"]
            dsns = (pg_db.writer_dsn, pg_db.control_dsn)
            results = await race(dsns, run_id, approval, locks, logs)

            winners = [r for r in results if r["exit"] == 0]
            losers = [r for r in results if r["exit"] != 0]
            assert len(winners) == 1, results
            (winner,), (loser,) = winners, losers
            assert winner["state"] == RunState.AWAITING_LIFECYCLE_AUTHORIZATION.value
            assert loser["exit"] == 3, results
            # The loser is refused: the approval is spent, or the winner still holds the
            # document (the same run, walking in the other process) and says so.
            if locks == "pg" and loser["code"] == DocumentBusy.code:
                assert run_id in loser["message"], loser
            else:
                assert loser["code"] == ApprovalConsumedAlready.code, loser
                assert approval in loser["message"]

            # consumed once, by this run; any later use is refused as consumed
            consumed = await admin_fetch(
                pg_db.admin_dsn, "SELECT approval_kb_id, run_id FROM consumed_approvals"
            )
            assert [
                (r["approval_kb_id"], r["run_id"]) for r in consumed if r["run_id"] == run_id
            ] == [(approval, run_id)]
            with pytest.raises(ApprovalConsumedAlready):
                await runner.resume(run_id, approval)

            # the run is at SG_2 once: the winner's gate is the stored one, nothing doubled
            stored = await runner.status(run_id)
            assert stored.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
            assert [g.gate for g in stored.gates] == [Gate.SG_1, Gate.SG_2]
            sg1, sg2 = stored.gates
            assert [u.approval_kb_id for u in sg1.uses] == [approval]
            assert sg2.nonce == winner["nonce"]
            assert stored.phases_passed[-1] is Phase.WRITE_VERIFY
            assert len(await kb_ids(pg_db.admin_dsn, f"runs/{run_id}/phases/")) == 9
            assert await kb_ids(pg_db.admin_dsn, f"runs/{run_id}/gates/") == [
                f"runs/{run_id}/gates/SG_1/request",
                f"runs/{run_id}/gates/SG_2/request",
            ]
            rows = await admin_fetch(
                pg_db.admin_dsn, "SELECT state, change_set_id FROM ius WHERE doc_id = $1", doc_id
            )
            assert len(rows) == N_IUS
            assert {(r["state"], r["change_set_id"]) for r in rows} == {
                ("staged", stored.pins[Pin.CHANGE_SET_ID])
            }
        cuts = [
            e.envelope.run_id
            for e in await config.target.ledger.entries()
            if isinstance(e.envelope, CutEnvelope)
        ]
        await config.target.ledger.verify()
    assert len(cuts) == len(set(cuts)) == RACES  # one cut entry per raced run


# --- the consumption step alone ---------------------------------------------------------


class _RunStoreProxy:
    """A run store that lets the test order two racers' steps."""

    def __init__(self, inner: RunStore) -> None:
        self.inner = inner
        self.consumed = anyio.Event()  # set once this store consumed an approval
        self.waiting = anyio.Event()  # set when a consumption lookup is held
        self.hold_lookup_until: anyio.Event | None = None
        self.hold_at = "consumed_by"  # which lookup is held: consumed_by or consumed_for

    async def _held(self, lookup: str) -> None:
        if self.hold_lookup_until is not None and lookup == self.hold_at:
            self.waiting.set()
            await self.hold_lookup_until.wait()

    async def load(self, run_id: str) -> Sidecar:
        return await self.inner.load(run_id)

    async def create(self, sidecar: Sidecar) -> None:
        await self.inner.create(sidecar)

    async def save(self, sidecar: Sidecar) -> None:
        await self.inner.save(sidecar)

    async def save_consuming(self, sidecar: Sidecar, use: ApprovalUse) -> None:
        await self.inner.save_consuming(sidecar, use)
        self.consumed.set()

    async def consumed_by(self, approval_kb_id: str) -> str | None:
        await self._held("consumed_by")
        return await self.inner.consumed_by(approval_kb_id)

    async def consumed_for(self, run_id: str) -> list[str]:
        await self._held("consumed_for")
        return await self.inner.consumed_for(run_id)

    async def run_ids(self) -> list[str]:
        return await self.inner.run_ids()


@pytest.mark.parametrize("held_at", ["consumed_by", "consumed_for"])
async def test_consuming_one_approval_twice_advances_once_without_the_document_lock(
    pg_db: PgDatabase, held_at: str
) -> None:
    """Exactly once is the store step's promise (docs/gates.md, "Exactly once"), not the
    document lock's: two runners whose locks do not see each other (two processes on
    in-process locks) resume one run with one approval. B read the run before A consumed
    and looks the approval up after (held at ``consumed_by``: it sees A's consumption;
    held at ``consumed_for``: it saw none, then finds one its copy does not record): B
    must be refused as consumed, not "recover" A's consumption nor wait for one."""
    disc = InMemoryDiscoverer.seeded(N_IUS)
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config_a,
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as config_b,
    ):
        store_a, store_b = _RunStoreProxy(config_a.run_store), _RunStoreProxy(config_b.run_store)
        store_b.hold_lookup_until = store_a.consumed
        store_b.hold_at = held_at
        runner_a = Runner(replace(config_a, run_store=store_a, locks=InProcessDocumentLocks()))
        runner_b = Runner(replace(config_b, run_store=store_b, locks=InProcessDocumentLocks()))
        outcomes: dict[str, Sidecar | BaseException] = {}

        async def resume(name: str, runner: Runner, run_id: str, approval: str) -> None:
            try:
                outcomes[name] = await runner.resume(run_id, approval)
            except ApprovalConsumedAlready as exc:
                outcomes[name] = exc

        async with runner_a, runner_b:
            at_sg1 = await runner_a.cut(DOC_ID, started_by=OPERATOR)
            approval = await write_approval(config_a.kb, at_sg1)
            with anyio.fail_after(WAIT_S):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(resume, "b", runner_b, at_sg1.run_id, approval)
                    await store_b.waiting.wait()  # B holds the sidecar it read at SG_1
                    tg.start_soon(resume, "a", runner_a, at_sg1.run_id, approval)
            stored = await runner_a.status(at_sg1.run_id)

    advanced = {name for name, outcome in outcomes.items() if isinstance(outcome, Sidecar)}
    assert advanced == {"a"}, outcomes
    assert isinstance(outcomes["b"], ApprovalConsumedAlready)
    assert stored == outcomes["a"]
    assert [len(g.uses) for g in stored.gates] == [1, 0]


# --- one walk per document ----------------------------------------------------------------


class BlockingGrants:
    """A grant probe that parks the walk inside grant_probe until released."""

    def __init__(self, inner: GrantProbe) -> None:
        self.inner = inner
        self.entered = anyio.Event()
        self.release = anyio.Event()

    async def writer_grants(self) -> WriterGrants:
        self.entered.set()
        await self.release.wait()
        return await self.inner.writer_grants()


async def test_a_second_walk_of_a_document_is_refused_naming_the_holder(
    pg_db: PgDatabase,
) -> None:
    disc = InMemoryDiscoverer.seeded(N_IUS)
    other_doc = "doc-other-002"
    await publish_source(pg_db.admin_dsn, DOC_ID, disc.source)
    await publish_source(pg_db.admin_dsn, other_doc, disc.source)
    results: dict[str, Sidecar] = {}
    async with (
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as first_config,
        pg_config(pg_db.writer_dsn, disc, control_dsn=pg_db.control_dsn) as second_config,
    ):
        blocking = BlockingGrants(first_config.grants)
        first = Runner(replace(first_config, grants=blocking))

        async def first_cut() -> None:
            results["first"] = await first.cut(DOC_ID, started_by=OPERATOR)

        async with first, Runner(second_config) as second:
            with anyio.fail_after(WAIT_S):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(first_cut)
                    await blocking.entered.wait()  # the first walk is inside grant_probe
                    (holder,) = await second.runs()
                    assert holder.state is RunState.RUNNING

                    with pytest.raises(DocumentBusy) as busy:
                        await second.cut(DOC_ID, started_by=OPERATOR)
                    assert busy.value.code == "STOP_DOCUMENT_BUSY"
                    assert busy.value.doc_id == DOC_ID
                    assert holder.run_id in busy.value.message
                    assert [r.run_id for r in await second.runs()] == [holder.run_id]

                    other = await second.cut(other_doc, started_by=OPERATOR)
                    assert other.state is RunState.AWAITING_CUT_AUTHORIZATION
                    blocking.release.set()
            assert results["first"].run_id == holder.run_id
            assert results["first"].state is RunState.AWAITING_CUT_AUTHORIZATION
            # The walk is over but the run is open at SG_1: it still holds the document,
            # and the other process can resume it.
            with pytest.raises(DocumentBusy, match=holder.run_id):
                await second.cut(DOC_ID, started_by=OPERATOR)
            resumed = await second.resume(
                results["first"].run_id, await write_approval(second_config.kb, results["first"])
            )
            assert resumed.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
            # Once it ends, a later run of the document goes through.
            await second.abort(holder.run_id, reason="superseded", by=OPERATOR)
            later = await second.cut(DOC_ID, started_by=OPERATOR)
            assert later.state is RunState.AWAITING_CUT_AUTHORIZATION
