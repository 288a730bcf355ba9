"""Recording ledger anchors: leg_b_record, rollback and closeout over in-memory stores.

An anchor is recorded for every entry a live run appends, equal to that entry
after any replay (even one that follows a crash between the append and the
record), never a second one, never for a dry run's sandbox; closeout refuses to
report a run whose cut is no longer where its anchor says (docs/ledger.md §8).
"""

from __future__ import annotations

import msgspec
import pytest

from cutter.core.anchors import anchor_of
from cutter.core.errors import StopVerifyFailed
from cutter.core.kbdocs import CloseoutReport, KBDoc, LedgerAnchor, anchor_doc_id, closeout_doc_id
from cutter.core.ledger import CutEnvelope, RollbackEnvelope, next_entry
from cutter.core.mode import Mode
from cutter.core.route import Phase, Pin
from cutter.walk.anchoring import read_anchors
from cutter.walk.phases import rollback
from tests.test_phase_bodies import RUN_ID, Bench, make_bench, older_row

pytestmark = pytest.mark.anyio


def live_bench() -> Bench:
    bench = make_bench()
    bench.sidecar = msgspec.structs.replace(bench.sidecar, mode=Mode.LIVE)
    return bench


async def anchor_bytes(bench: Bench) -> dict[str, bytes]:
    return {k: v for k, v in bench.kb._docs.items() if k.startswith("ledger-anchors/")}


class CrashOnAnchor:
    """Fails the first anchor write, as a crash right after the ledger append would."""

    def __init__(self, bench: Bench) -> None:
        self.put_through = bench.kb.put  # the store's own put, before it is patched
        self.failed = False

    async def put(self, kb_id: str, doc: KBDoc) -> None:
        if isinstance(doc, LedgerAnchor) and not self.failed:
            self.failed = True
            raise RuntimeError("crashed before the anchor was written")
        await self.put_through(kb_id, doc)


class TestLegBRecordAnchorsTheCut:
    async def test_a_live_cut_is_anchored_at_the_entry_it_appended(self) -> None:
        bench = live_bench()
        out = await bench.run_through(Phase.LEG_B_RECORD)
        (entry,) = await bench.ledger.entries()
        anchor = await bench.kb.get(anchor_doc_id(RUN_ID, "cut"))
        assert anchor == anchor_of(entry)
        assert isinstance(anchor, LedgerAnchor)
        assert (anchor.run_id, anchor.kind, anchor.seq) == (RUN_ID, "cut", 0)
        assert anchor.entry_hash == out.pins[Pin.MANIFEST_ENVELOPE_ID]

    async def test_a_replay_writes_the_same_anchor_and_no_second_one(self) -> None:
        bench = live_bench()
        await bench.run_through(Phase.LEG_B_RECORD)
        before = await anchor_bytes(bench)
        await bench.call(Phase.LEG_B_RECORD)
        assert await anchor_bytes(bench) == before
        assert list(before) == [anchor_doc_id(RUN_ID, "cut")]

    async def test_a_replay_after_a_crash_between_append_and_anchor_anchors_that_entry(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bench = live_bench()
        await bench.run_until(Phase.LEG_B_RECORD)
        crashing = CrashOnAnchor(bench)
        monkeypatch.setattr(bench.kb, "put", crashing.put)
        with pytest.raises(RuntimeError, match="crashed"):
            await bench.call(Phase.LEG_B_RECORD)
        assert crashing.failed
        assert await anchor_bytes(bench) == {}
        (entry,) = await bench.ledger.entries()  # the append happened
        await bench.call(Phase.LEG_B_RECORD)  # the replay
        assert await bench.ledger.entries() == [entry]
        assert await read_anchors(bench.kb) == [anchor_of(entry)]

    async def test_a_dry_run_anchors_nothing(self) -> None:
        bench = make_bench()
        await bench.run_through(Phase.LEG_B_RECORD)
        assert len(await bench.ledger.entries()) == 1
        assert await read_anchors(bench.kb) == []

    async def test_an_anchor_that_disagrees_with_the_entry_stops_the_run_and_is_kept(
        self,
    ) -> None:
        bench = live_bench()
        await bench.run_until(Phase.LEG_B_RECORD)
        earlier = LedgerAnchor(
            run_id=RUN_ID,
            doc_id=bench.sidecar.doc_id,
            kind="cut",
            seq=7,
            entry_hash="ab" * 32,
            envelope_sha="cd" * 32,
        )
        await bench.kb.put(anchor_doc_id(RUN_ID, "cut"), earlier)
        with pytest.raises(StopVerifyFailed, match="anchored at ledger entry 7"):
            await bench.call(Phase.LEG_B_RECORD)
        assert await read_anchors(bench.kb) == [earlier]


class TestRollbackAnchorsItsEntry:
    async def test_rollback_returns_and_records_the_anchor_of_its_entry(self) -> None:
        bench = live_bench()
        await bench.run_through(Phase.LEG_B_RECORD)
        anchor = await rollback(bench.target, bench.sidecar, "rejected at SG_2", kb=bench.kb)
        cut, undone = await bench.ledger.entries()
        assert isinstance(undone.envelope, RollbackEnvelope)
        assert anchor == anchor_of(undone)
        assert await read_anchors(bench.kb) == [anchor_of(cut), anchor_of(undone)]

    async def test_a_replay_with_another_reason_reuses_the_entry_and_the_anchor(self) -> None:
        bench = live_bench()
        await bench.run_through(Phase.LEG_B_RECORD)
        first = await rollback(bench.target, bench.sidecar, "aborted by ann: first", kb=bench.kb)
        before = await anchor_bytes(bench)
        later = older_row(0, body=b"written after the rollback")
        await bench.ius.write_staged([later])
        again = await rollback(bench.target, bench.sidecar, "aborted by bob: again", kb=bench.kb)
        assert again == first
        entries = await bench.ledger.entries()
        assert [type(e.envelope) for e in entries] == [CutEnvelope, RollbackEnvelope]
        assert isinstance(entries[1].envelope, RollbackEnvelope)
        assert entries[1].envelope.reason == "aborted by ann: first"
        assert await anchor_bytes(bench) == before
        # the entry proves the rows were restored: nothing is restored over them again
        assert await bench.ius.rows(bench.sidecar.doc_id) == [later]

    async def test_a_replay_after_a_crash_before_the_anchor_anchors_the_entry(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bench = live_bench()
        await bench.run_through(Phase.LEG_B_RECORD)
        crashing = CrashOnAnchor(bench)
        monkeypatch.setattr(bench.kb, "put", crashing.put)
        with pytest.raises(RuntimeError, match="crashed"):
            await rollback(bench.target, bench.sidecar, "rejected at SG_2", kb=bench.kb)
        assert [a.kind for a in await read_anchors(bench.kb)] == ["cut"]
        anchor = await rollback(bench.target, bench.sidecar, "rejected at SG_2", kb=bench.kb)
        undone = (await bench.ledger.entries())[-1]
        assert anchor == anchor_of(undone)
        assert [a.kind for a in await read_anchors(bench.kb)] == ["cut", "rollback"]

    async def test_without_a_kb_or_in_a_dry_run_nothing_is_anchored(self) -> None:
        live = live_bench()
        await live.run_through(Phase.LEG_B_RECORD)
        assert await rollback(live.target, live.sidecar, "no kb given") is not None
        assert [a.kind for a in await read_anchors(live.kb)] == ["cut"]
        dry = make_bench()
        await dry.run_through(Phase.LEG_B_RECORD)
        assert await rollback(dry.target, dry.sidecar, "dry", kb=dry.kb) is not None
        assert await read_anchors(dry.kb) == []

    async def test_nothing_to_undo_is_none_and_writes_nothing(self) -> None:
        bench = live_bench()
        await bench.run_through(Phase.GRANT_PROBE)
        assert await rollback(bench.target, bench.sidecar, "early", kb=bench.kb) is None
        assert await bench.ledger.entries() == []
        assert await read_anchors(bench.kb) == []


class TestCloseoutConfirmsTheCut:
    async def test_the_closeout_report_carries_the_confirmed_anchor(self) -> None:
        bench = live_bench()
        await bench.run_through(Phase.CLOSEOUT)
        (entry,) = await bench.ledger.entries()
        report = await bench.kb.get(closeout_doc_id(RUN_ID))
        assert isinstance(report, CloseoutReport)
        assert report.ledger_anchor == anchor_of(entry)

    async def test_a_cut_entry_gone_from_the_ledger_stops_closeout(self) -> None:
        bench = live_bench()
        await bench.run_until(Phase.CLOSEOUT)
        bench.ledger._entries.clear()
        with pytest.raises(StopVerifyFailed, match="ledger entry 0 of this run's cut missing"):
            await bench.run(Phase.CLOSEOUT)
        assert closeout_doc_id(RUN_ID) not in await bench.kb.list("")

    async def test_a_cut_entry_rewritten_and_rehashed_stops_closeout(self) -> None:
        bench = live_bench()
        await bench.run_until(Phase.CLOSEOUT)
        (entry,) = bench.ledger._entries
        assert isinstance(entry.envelope, CutEnvelope)
        forged = msgspec.structs.replace(entry.envelope, iu_count=13)
        bench.ledger._entries[0] = next_entry(None, forged)
        with pytest.raises(StopVerifyFailed, match="entry 0 of this run's cut changed"):
            await bench.run(Phase.CLOSEOUT)

    async def test_a_cut_recorded_before_anchors_existed_is_anchored_at_closeout(self) -> None:
        bench = live_bench()
        await bench.run_until(Phase.CLOSEOUT)
        del bench.kb._docs[anchor_doc_id(RUN_ID, "cut")]
        await bench.run(Phase.CLOSEOUT)
        (entry,) = await bench.ledger.entries()
        assert await read_anchors(bench.kb) == [anchor_of(entry)]

    async def test_a_dry_run_closes_without_an_anchor(self) -> None:
        bench = make_bench()
        await bench.run_through(Phase.CLOSEOUT)
        report = await bench.kb.get(closeout_doc_id(RUN_ID))
        assert isinstance(report, CloseoutReport)
        assert report.ledger_anchor is None
