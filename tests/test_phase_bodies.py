"""The eleven phase bodies, called directly over in-memory stores.

A ``Bench`` plays the run supervisor's part: it calls each body with a
``PhaseContext``, checks the contract, writes the phase doc to the KB (the
cutplan doc carries the manifest later phases read) and records pins, passed
phases and phase docs in a RUNNING sidecar — but no actors, no gates.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
import pytest

from cutter.core.errors import (
    CorruptRecord,
    StopCode,
    StopDocumentUnknown,
    StopGrantMissing,
    StopPlanInvalid,
    StopVerifyFailed,
)
from cutter.core.kbdocs import (
    CloseoutReport,
    PhaseDoc,
    RunsIndexEntry,
    closeout_doc_id,
    phase_doc_id,
    runs_index_id,
)
from cutter.core.ledger import CutEnvelope, verify_chain
from cutter.core.mode import Mode
from cutter.core.ports import Target
from cutter.core.records import (
    REQUIRED_GRANTS,
    Backup,
    Candidate,
    IURow,
    IUState,
    Manifest,
    WriterGrants,
)
from cutter.core.route import PHASES, Phase, Pin, check_inputs, check_outputs, next_phase
from cutter.core.sidecar import Sidecar, amend
from cutter.core.states import RunState
from cutter.stores.memory.records import InMemoryKnowledgeBase
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.memory.target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.walk.phases import BODIES, PhaseContext, PhaseOutput, Services
from cutter.walk.sandbox import sandbox
from tests._gates import UncheckedGates
from tests._harness import DOC_ID, SD_ID, SV_ID, FakeClock, seed_discoverer

pytestmark = pytest.mark.anyio

RUN_ID = "run-0123456789abcdef"
OTHER_DOC = "doc-other-002"


@dataclass
class Bench:
    """In-memory stores, a RUNNING sidecar, and the supervisor's bookkeeping."""

    disc: InMemoryDiscoverer
    sources: InMemorySources
    ius: InMemoryIUStore
    ledger: InMemoryLedger
    grants: StaticGrantProbe
    kb: InMemoryKnowledgeBase
    clock: FakeClock
    sidecar: Sidecar
    target: Target = field(init=False)

    def __post_init__(self) -> None:
        self.target = Target(sources=self.sources, ius=self.ius, ledger=self.ledger)

    def ctx(self) -> PhaseContext:
        services = Services(
            target=self.target,
            kb=self.kb,
            discoverer=self.disc,
            grants=self.grants,
            clock=self.clock,
            gates=UncheckedGates(),
        )
        return PhaseContext(self.sidecar, services)

    async def call(self, phase: Phase) -> PhaseOutput:
        """Run a body again without recording it (a replay)."""
        return await BODIES[phase](self.ctx())

    async def run(self, phase: Phase) -> PhaseOutput:
        """Run the next phase's body and record it as the supervisor does."""
        assert next_phase(self.sidecar.phases_passed) is phase
        check_inputs(phase, self.sidecar.pins)
        out = await BODIES[phase](self.ctx())
        check_outputs(phase, self.sidecar.pins, out.pins)
        ordinal = PHASES.index(phase) + 1
        kb_id = phase_doc_id(self.sidecar.run_id, phase, ordinal)
        await self.kb.put(
            kb_id,
            PhaseDoc(
                run_id=self.sidecar.run_id,
                phase=phase,
                ordinal=ordinal,
                mode=self.sidecar.mode,
                passed_at=self.clock(),
                pins_added=out.pins,
                note=out.note,
                candidates=out.candidates,
                manifest=out.manifest,
            ),
        )
        sc = self.sidecar
        self.sidecar = amend(
            sc,
            at=self.clock(),
            pins={**sc.pins, **out.pins},
            phases_passed=(*sc.phases_passed, phase),
            phase_docs={**sc.phase_docs, phase: kb_id},
        )
        return out

    async def run_until(self, phase: Phase) -> None:
        """Pass every phase before ``phase``."""
        for earlier in PHASES[: PHASES.index(phase)]:
            await self.run(earlier)

    async def run_through(self, phase: Phase) -> PhaseOutput:
        await self.run_until(phase)
        return await self.run(phase)

    def pin(self, pin: Pin) -> str:
        return str(self.sidecar.pins[pin])

    async def manifest(self) -> Manifest:
        doc = await self.kb.get(self.sidecar.phase_docs[Phase.CUTPLAN])
        assert isinstance(doc, PhaseDoc)
        assert doc.manifest is not None
        return doc.manifest

    def stored(self) -> dict[tuple[str, str, int], IURow]:
        """The IU store's rows as it holds them (white box: tests tamper with them)."""
        return self.ius._rows


def make_bench(
    n_candidates: int = 12,
    *,
    disc: InMemoryDiscoverer | None = None,
    rows: Iterable[IURow] = (),
    grants: Iterable[str] = REQUIRED_GRANTS,
    doc_id: str = DOC_ID,
    run_id: str = RUN_ID,
) -> Bench:
    disc = disc or seed_discoverer(n_candidates)
    sources = InMemorySources()
    sources.seed(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    clock = FakeClock()
    now = clock()
    sidecar = Sidecar(
        run_id=run_id,
        doc_id=doc_id,
        mode=Mode.DRY_RUN,
        started_by="operator-ann",
        created_at=now,
        updated_at=now,
        state=RunState.RUNNING,
    )
    return Bench(
        disc=disc,
        sources=sources,
        ius=InMemoryIUStore(rows),
        ledger=InMemoryLedger(),
        grants=StaticGrantProbe(grants=grants),
        kb=InMemoryKnowledgeBase(),
        clock=clock,
        sidecar=sidecar,
    )


def with_candidates(candidates: Sequence[Candidate]) -> InMemoryDiscoverer:
    """The seeded source of 12 articles, described by other candidates."""
    return InMemoryDiscoverer(seed_discoverer(12).source, candidates)


def seeded() -> list[Candidate]:
    """The 12 seeded candidates (they tile the seeded source)."""
    return list(seed_discoverer(12).candidates)


def shifted(index: int, *, start_by: int = 0, end_by: int = 0) -> list[Candidate]:
    """The 12 seeded candidates with one region's bounds moved."""
    cands = seeded()
    c = cands[index]
    cands[index] = msgspec.structs.replace(c, start=c.start + start_by, end=c.end + end_by)
    return cands


def older_row(ordinal: int, *, doc_id: str = DOC_ID, body: bytes = b"old text") -> IURow:
    """An active row of an earlier cut of ``doc_id``."""
    data = body
    return IURow(
        iu_id=f"iu-old-{doc_id}-{ordinal}",
        doc_id=doc_id,
        sv_id=f"sv-{doc_id}-v0",
        ordinal=ordinal,
        label=f"Article {ordinal + 1}",
        kind="unit",
        start=ordinal * len(data),
        end=(ordinal + 1) * len(data),
        region_sha=hashlib.sha256(data).hexdigest(),
        body=body,
        state=IUState.ACTIVE,
        change_set_id="cs-older-cut",
    )


class TestSourcePinPhase:
    async def test_pins_current_version_id_sha_and_size(self) -> None:
        bench = make_bench()
        out = await bench.run(Phase.SOURCE_PIN)
        source = bench.disc.source
        assert out.pins == {
            Pin.SOURCE_VERSION_ID: SV_ID,
            Pin.SOURCE_SHA: hashlib.sha256(source).hexdigest(),
            Pin.SOURCE_SIZE: len(source),
        }
        assert type(out.pins[Pin.SOURCE_SIZE]) is int

    async def test_pins_the_newest_version_after_an_edit(self) -> None:
        bench = make_bench()
        edited = bench.disc.source + b"Article 13\n\nAdded later.\n"
        bench.sources.seed(DOC_ID, edited, sv_id="sv-charter-001-v2")
        out = await bench.run(Phase.SOURCE_PIN)
        assert out.pins[Pin.SOURCE_VERSION_ID] == "sv-charter-001-v2"
        assert out.pins[Pin.SOURCE_SHA] == hashlib.sha256(edited).hexdigest()
        assert out.pins[Pin.SOURCE_SIZE] == len(edited)

    async def test_unknown_document_stops_with_document_unknown(self) -> None:
        bench = make_bench(doc_id="doc-nobody-knows")
        with pytest.raises(StopDocumentUnknown, match="doc-nobody-knows") as caught:
            await bench.run(Phase.SOURCE_PIN)
        assert caught.value.stop_code is StopCode.DOCUMENT_UNKNOWN
        assert bench.sidecar.pins == {}


class TestMarkPhase:
    async def test_counts_candidates_and_returns_them(self) -> None:
        bench = make_bench(7)
        await bench.run(Phase.SOURCE_PIN)
        out = await bench.run(Phase.MARK)
        assert out.pins[Pin.CANDIDATE_COUNT] == 7
        assert out.candidates == bench.disc.candidates
        assert len(out.candidates) == 7
        doc = await bench.kb.get(bench.sidecar.phase_docs[Phase.MARK])
        assert isinstance(doc, PhaseDoc)
        assert doc.candidates == bench.disc.candidates

    async def test_region_sha_changes_when_one_region_changes(self) -> None:
        async def region_sha(disc: InMemoryDiscoverer) -> str:
            bench = make_bench(disc=disc)
            await bench.run_through(Phase.MARK)
            return bench.pin(Pin.REGION_SHA)

        base = await region_sha(with_candidates(seeded()))
        assert base == await region_sha(with_candidates(seeded())), "not deterministic"
        moved = shifted(4, end_by=-3)
        moved[5] = msgspec.structs.replace(moved[5], start=moved[5].start - 3)
        relabelled = seeded()
        relabelled[2] = msgspec.structs.replace(relabelled[2], label="Article 3a")
        rekinded = seeded()
        rekinded[0] = msgspec.structs.replace(rekinded[0], kind="preamble")
        assert base != await region_sha(with_candidates(moved))
        assert base != await region_sha(with_candidates(relabelled))
        assert base != await region_sha(with_candidates(rekinded))

    async def test_region_sha_tells_apart_regions_whose_labels_hold_separators(self) -> None:
        # Two lists of two regions each, with different bounds and labels; the
        # labels hold a tab and a newline (labels come from the source text). A
        # digest over all regions must tell them apart.
        first = [
            Candidate(label="Article 1", start=0, end=5),
            Candidate(label="Article 2\t5\t10\nunit\tArticle 3", start=10, end=15),
        ]
        second = [
            Candidate(label="Article 1\t0\t5\nunit\tArticle 2", start=5, end=10),
            Candidate(label="Article 3", start=10, end=15),
        ]
        pins = []
        for cands in (first, second):
            bench = make_bench(disc=with_candidates(cands))
            await bench.run_through(Phase.MARK)
            pins.append((bench.pin(Pin.CANDIDATE_COUNT), bench.pin(Pin.REGION_SHA)))
        assert pins[0][0] == pins[1][0] == "2"
        assert pins[0][1] != pins[1][1], "two different region lists, one region_sha"

    async def test_no_candidates_is_an_invalid_plan(self) -> None:
        bench = make_bench(disc=with_candidates([]))
        await bench.run(Phase.SOURCE_PIN)
        with pytest.raises(StopPlanInvalid, match="no units"):
            await bench.run(Phase.MARK)

    async def test_refuses_source_bytes_that_no_longer_match_the_pinned_sha(self) -> None:
        bench = make_bench()
        await bench.run(Phase.SOURCE_PIN)
        bench.sources._content[SV_ID] = bench.disc.source.replace(b"Article 3", b"Article 9")
        with pytest.raises(StopVerifyFailed, match="source_sha"):
            await bench.run(Phase.MARK)


class TestCutplanPhase:
    async def test_manifest_tiles_the_source(self) -> None:
        bench = make_bench()
        out = await bench.run_through(Phase.CUTPLAN)
        source = bench.disc.source
        manifest = out.manifest
        assert manifest is not None
        assert out.pins == {Pin.MANIFEST_DIGEST: manifest.digest, Pin.IU_COUNT: 12}
        assert (manifest.doc_id, manifest.sv_id) == (DOC_ID, SV_ID)
        assert manifest.source_sha == hashlib.sha256(source).hexdigest()
        assert manifest.source_size == len(source)
        assert [iu.ordinal for iu in manifest.ius] == list(range(12))
        assert b"".join(source[iu.start : iu.end] for iu in manifest.ius) == source
        assert all(a.end == b.start for a, b in zip(manifest.ius, manifest.ius[1:], strict=False))
        for iu, cand in zip(manifest.ius, bench.disc.candidates, strict=True):
            assert (iu.label, iu.start, iu.end) == (cand.label, cand.start, cand.end)
            assert iu.region_sha == hashlib.sha256(source[iu.start : iu.end]).hexdigest()
        assert len({iu.iu_id for iu in manifest.ius}) == 12
        assert await bench.manifest() == manifest

    async def test_same_label_twice_gets_two_ids(self) -> None:
        cands = seeded()
        cands[7] = msgspec.structs.replace(cands[7], label=cands[6].label)
        bench = make_bench(disc=with_candidates(cands))
        out = await bench.run_through(Phase.CUTPLAN)
        assert out.manifest is not None
        assert len({iu.iu_id for iu in out.manifest.ius}) == 12

    @pytest.mark.parametrize(
        ("candidates", "problem"),
        [
            pytest.param(shifted(5, start_by=-4), "overlaps", id="overlap"),
            pytest.param(shifted(5, start_by=4), "gap", id="gap"),
            pytest.param(shifted(11, end_by=-1), "regions end at", id="short-of-the-end"),
            pytest.param(shifted(11, end_by=6), "regions end at", id="past-the-end"),
            pytest.param(shifted(3, end_by=-200), "empty or reversed", id="reversed"),
        ],
    )
    async def test_candidates_that_do_not_tile_are_an_invalid_plan(
        self, candidates: list[Candidate], problem: str
    ) -> None:
        bench = make_bench(disc=with_candidates(candidates))
        await bench.run_through(Phase.MARK)
        with pytest.raises(StopPlanInvalid, match=problem) as caught:
            await bench.run(Phase.CUTPLAN)
        assert caught.value.stop_code is StopCode.PLAN_INVALID
        assert Phase.CUTPLAN not in bench.sidecar.phase_docs

    async def test_refuses_regions_that_differ_from_mark(self) -> None:
        bench = make_bench()
        await bench.run_through(Phase.MARK)
        bench.disc.candidates = tuple(shifted(5, start_by=-2))
        with pytest.raises(StopPlanInvalid, match="not deterministic"):
            await bench.run(Phase.CUTPLAN)

    async def test_refuses_a_document_that_changed_version_since_source_pin(self) -> None:
        bench = make_bench()
        await bench.run_through(Phase.MARK)
        bench.sources.seed(DOC_ID, bench.disc.source, sv_id="sv-charter-001-v2")
        with pytest.raises(StopPlanInvalid, match="changed version"):
            await bench.run(Phase.CUTPLAN)


class TestBackupPhase:
    async def test_captures_the_documents_existing_rows_and_only_those(self) -> None:
        mine = [older_row(0), older_row(1)]
        theirs = older_row(0, doc_id=OTHER_DOC)
        bench = make_bench(rows=[*mine, theirs])
        out = await bench.run_through(Phase.PRE_WRITE_BACKUP)
        backup_id = str(out.pins[Pin.BACKUP_ID])
        with pytest.raises(CorruptRecord):  # nothing is written before grant_probe and SG_1
            await bench.ius.load_backup(backup_id)
        await bench.run(Phase.GRANT_PROBE)
        await bench.run(Phase.CUT_LEG_A)
        backup = await bench.ius.load_backup(backup_id)  # leg A stores it before writing
        assert backup.doc_id == DOC_ID
        assert list(backup.rows) == mine
        assert out.pins == {Pin.BACKUP_ID: backup.backup_id}

    async def test_backup_id_is_derived_from_content(self) -> None:
        async def backup_id(rows: list[IURow]) -> str:
            bench = make_bench(rows=rows)
            await bench.run_through(Phase.PRE_WRITE_BACKUP)
            replay = await bench.call(Phase.PRE_WRITE_BACKUP)
            assert replay.pins[Pin.BACKUP_ID] == bench.pin(Pin.BACKUP_ID)
            return bench.pin(Pin.BACKUP_ID)

        first = await backup_id([older_row(0), older_row(1)])
        assert first.startswith("bk-")
        assert first == await backup_id([older_row(0), older_row(1)])
        assert first != await backup_id([older_row(0), older_row(1, body=b"new text")])
        assert first != await backup_id([older_row(0)])
        assert first != await backup_id([])

    async def test_restoring_the_backup_undoes_leg_a(self) -> None:
        mine = [older_row(0), older_row(1)]
        bench = make_bench(rows=mine)
        await bench.run_through(Phase.CUT_LEG_A)
        assert len(await bench.ius.rows(DOC_ID)) == 14
        await bench.ius.restore(await bench.ius.load_backup(bench.pin(Pin.BACKUP_ID)))
        assert await bench.ius.rows(DOC_ID) == mine


class TestGrantProbePhase:
    async def test_exactly_the_required_grants_pass_and_pin_the_writer(self) -> None:
        bench = make_bench(grants=reversed(REQUIRED_GRANTS))
        out = await bench.run_through(Phase.GRANT_PROBE)
        expected = WriterGrants(writer="cutter_writer", grants=tuple(sorted(REQUIRED_GRANTS)))
        assert out.pins == {Pin.WRITER_DIGEST: expected.writer_digest}
        other = WriterGrants(writer="someone_else", grants=tuple(sorted(REQUIRED_GRANTS)))
        assert out.pins[Pin.WRITER_DIGEST] != other.writer_digest
        assert bench.stored() == {}
        assert await bench.ledger.entries() == []

    @pytest.mark.parametrize("dropped", REQUIRED_GRANTS)
    async def test_a_missing_grant_stops(self, dropped: str) -> None:
        bench = make_bench(grants=[g for g in REQUIRED_GRANTS if g != dropped])
        await bench.run_until(Phase.GRANT_PROBE)
        with pytest.raises(StopGrantMissing, match=f"lacks {dropped}") as caught:
            await bench.run(Phase.GRANT_PROBE)
        assert caught.value.stop_code is StopCode.GRANT_MISSING

    async def test_one_grant_too_many_stops(self) -> None:
        bench = make_bench(grants=[*REQUIRED_GRANTS, "ledger:delete"])
        await bench.run_until(Phase.GRANT_PROBE)
        with pytest.raises(StopGrantMissing, match="more than it needs: ledger:delete"):
            await bench.run(Phase.GRANT_PROBE)


class TestCutLegAPhase:
    async def test_writes_one_staged_row_per_planned_iu(self) -> None:
        bench = make_bench()
        out = await bench.run_through(Phase.CUT_LEG_A)
        change_set_id = bench.pin(Pin.CHANGE_SET_ID)
        assert out.pins == {Pin.CHANGE_SET_ID: change_set_id}
        assert change_set_id.startswith("cs-")
        rows = await bench.ius.change_set(change_set_id)
        manifest = await bench.manifest()
        assert len(rows) == len(bench.stored()) == 12
        source = bench.disc.source
        for row, iu in zip(rows, manifest.ius, strict=True):
            assert row.state is IUState.STAGED
            assert (row.doc_id, row.sv_id) == (DOC_ID, SV_ID)
            assert (row.iu_id, row.ordinal, row.label) == (iu.iu_id, iu.ordinal, iu.label)
            assert (row.start, row.end, row.region_sha) == (iu.start, iu.end, iu.region_sha)
            assert row.body == source[iu.start : iu.end]

    async def test_a_replay_writes_nothing_new_and_returns_the_same_change_set(self) -> None:
        bench = make_bench()
        first = await bench.run_through(Phase.CUT_LEG_A)
        before = dict(bench.stored())
        again = await bench.call(Phase.CUT_LEG_A)
        assert again.pins == first.pins
        assert bench.stored() == before
        assert "0 staged IUs written (12 already present)" in again.note

    async def test_change_set_id_depends_on_run_and_manifest(self) -> None:
        ids = []
        benches = (make_bench(), make_bench(), make_bench(run_id="run-fedcba98"), make_bench(11))
        for bench in benches:
            await bench.run_through(Phase.CUT_LEG_A)
            ids.append(bench.pin(Pin.CHANGE_SET_ID))
        assert ids[0] == ids[1]
        assert len(set(ids)) == 3

    async def test_refuses_a_row_owned_by_another_change_set(self) -> None:
        squatter = msgspec.structs.replace(older_row(3), sv_id=SV_ID, change_set_id="cs-squatter")
        bench = make_bench(rows=[squatter])
        await bench.run_until(Phase.CUT_LEG_A)
        with pytest.raises(StopVerifyFailed, match="cs-squatter"):
            await bench.run(Phase.CUT_LEG_A)
        assert list(bench.stored().values()) == [squatter], "nothing half-written"

    async def test_refuses_when_the_rows_changed_since_the_snapshot(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.CUT_LEG_A)
        newcomer = older_row(0)
        await bench.ius.write_staged([newcomer])
        with pytest.raises(StopVerifyFailed, match="changed since they were snapshotted"):
            await bench.run(Phase.CUT_LEG_A)
        assert list(bench.stored().values()) == [newcomer], "nothing written"

    async def test_refuses_a_stored_manifest_that_no_longer_matches_the_pin(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.CUT_LEG_A)
        manifest = await bench.manifest()
        forged = msgspec.structs.replace(manifest, ius=manifest.ius[:-1])
        kb_id = bench.sidecar.phase_docs[Phase.CUTPLAN]
        doc = await bench.kb.get(kb_id)
        assert isinstance(doc, PhaseDoc)
        await bench.kb.put(kb_id, msgspec.structs.replace(doc, manifest=forged))
        with pytest.raises(StopVerifyFailed, match="manifest_digest"):
            await bench.run(Phase.CUT_LEG_A)
        assert bench.stored() == {}

    async def test_in_a_sandbox_the_real_store_stays_empty(self) -> None:
        bench = make_bench(rows=[older_row(0)])
        real = bench.target
        bench.target = sandbox(real)
        await bench.run_through(Phase.CUT_LEG_A)
        change_set_id = bench.pin(Pin.CHANGE_SET_ID)
        assert len(await bench.target.ius.change_set(change_set_id)) == 12
        assert await real.ius.change_set(change_set_id) == []
        assert list(bench.stored().values()) == [older_row(0)]


class TestLegBPhase:
    async def test_appends_one_chained_cut_entry(self) -> None:
        bench = make_bench()
        out = await bench.run_through(Phase.LEG_B_RECORD)
        entries = await bench.ledger.entries()
        assert len(entries) == 1
        (entry,) = entries
        assert out.pins == {Pin.MANIFEST_ENVELOPE_ID: entry.entry_hash}
        assert entry.envelope == CutEnvelope(
            run_id=RUN_ID,
            doc_id=DOC_ID,
            sv_id=SV_ID,
            change_set_id=bench.pin(Pin.CHANGE_SET_ID),
            manifest_digest=bench.pin(Pin.MANIFEST_DIGEST),
            iu_count=12,
        )
        assert verify_chain(entries) == entry.entry_hash

    async def test_chains_onto_an_existing_ledger(self) -> None:
        bench = make_bench()
        earlier = await bench.ledger.append(
            CutEnvelope(
                run_id="run-earlier",
                doc_id=OTHER_DOC,
                sv_id="sv-other",
                change_set_id="cs-earlier",
                manifest_digest="0" * 64,
                iu_count=3,
            )
        )
        await bench.run_through(Phase.LEG_B_RECORD)
        entries = await bench.ledger.entries()
        assert [e.seq for e in entries] == [0, 1]
        assert entries[1].prev_hash == earlier.entry_hash
        assert verify_chain(entries) == bench.pin(Pin.MANIFEST_ENVELOPE_ID)

    async def test_a_replay_returns_the_same_entry_and_appends_nothing(self) -> None:
        bench = make_bench()
        first = await bench.run_through(Phase.LEG_B_RECORD)
        again = await bench.call(Phase.LEG_B_RECORD)
        assert again.pins == first.pins
        assert len(await bench.ledger.entries()) == 1


class TestWriteVerifyPhase:
    async def test_rows_equal_to_the_plan_pass(self) -> None:
        bench = make_bench()
        out = await bench.run_through(Phase.WRITE_VERIFY)
        result_id = str(out.pins[Pin.VERIFY_RESULT_ID])
        assert result_id.startswith("vr-")
        assert (await bench.call(Phase.WRITE_VERIFY)).pins == out.pins

    async def test_a_row_with_another_region_sha_and_body_fails(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.WRITE_VERIFY)
        key, row = sorted(bench.stored().items())[4]
        bench.stored()[key] = msgspec.structs.replace(
            row, body=b"Forged text.", region_sha=hashlib.sha256(b"Forged text.").hexdigest()
        )
        with pytest.raises(StopVerifyFailed, match="IU 4 differs from the plan"):
            await bench.run(Phase.WRITE_VERIFY)

    async def test_a_row_whose_body_no_longer_hashes_to_its_region_sha_fails(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.WRITE_VERIFY)
        key, row = sorted(bench.stored().items())[7]
        bench.stored()[key] = msgspec.structs.replace(row, body=row.body.upper())
        with pytest.raises(StopVerifyFailed, match="IU 7 body does not hash"):
            await bench.run(Phase.WRITE_VERIFY)

    async def test_a_missing_row_fails(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.WRITE_VERIFY)
        del bench.stored()[max(bench.stored())]
        with pytest.raises(StopVerifyFailed, match="11 IUs read back, 12 planned"):
            await bench.run(Phase.WRITE_VERIFY)


class TestLifecycleEnactPhase:
    async def test_staged_rows_become_active(self) -> None:
        bench = make_bench()
        out = await bench.run_through(Phase.LIFECYCLE_ENACT)
        rows = await bench.ius.change_set(bench.pin(Pin.CHANGE_SET_ID))
        # rows_after: the snapshot id of the rows the cut left (what a revert checks)
        after = Backup(doc_id=rows[0].doc_id, rows=tuple(await bench.ius.rows(rows[0].doc_id)))
        assert out.pins == {
            Pin.LIFECYCLE_ENACTED: True,
            Pin.LIFECYCLE_ENACTED_COUNT: 12,
            Pin.ROWS_AFTER: after.backup_id,
        }
        assert type(out.pins[Pin.LIFECYCLE_ENACTED_COUNT]) is int
        assert [r.state for r in rows] == [IUState.ACTIVE] * 12

    async def test_supersedes_the_documents_earlier_active_rows_only(self) -> None:
        mine = [older_row(0), older_row(1)]
        theirs = older_row(0, doc_id=OTHER_DOC)
        bench = make_bench(rows=[*mine, theirs])
        await bench.run_through(Phase.LIFECYCLE_ENACT)
        states = Counter((r.doc_id, r.sv_id, r.state) for r in bench.stored().values())
        assert states == {
            (DOC_ID, f"sv-{DOC_ID}-v0", IUState.SUPERSEDED): 2,
            (DOC_ID, SV_ID, IUState.ACTIVE): 12,
            (OTHER_DOC, f"sv-{OTHER_DOC}-v0", IUState.ACTIVE): 1,
        }

    async def test_marks_the_source_version_as_cut_by_the_change_set(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.LIFECYCLE_ENACT)
        assert await bench.sources.cut_by(SV_ID) is None
        await bench.run(Phase.LIFECYCLE_ENACT)
        assert await bench.sources.cut_by(SV_ID) == bench.pin(Pin.CHANGE_SET_ID)

    async def test_is_idempotent(self) -> None:
        bench = make_bench(rows=[older_row(0)])
        first = await bench.run_through(Phase.LIFECYCLE_ENACT)
        before = dict(bench.stored())
        again = await bench.call(Phase.LIFECYCLE_ENACT)
        assert again.pins == first.pins
        assert bench.stored() == before
        assert await bench.sources.cut_by(SV_ID) == bench.pin(Pin.CHANGE_SET_ID)


class TestStructuralVerifyPhase:
    async def test_rows_that_tile_the_source_pass(self) -> None:
        bench = make_bench()
        out = await bench.run_through(Phase.STRUCTURAL_VERIFY)
        assert out.pins == {Pin.STRUCTURAL_VERIFIED: True}

    async def test_a_missing_row_fails(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.STRUCTURAL_VERIFY)
        key = sorted(bench.stored())[5]
        del bench.stored()[key]
        with pytest.raises(StopVerifyFailed, match="gap before region 5") as caught:
            await bench.run(Phase.STRUCTURAL_VERIFY)
        assert caught.value.stop_code is StopCode.VERIFY_FAILED

    async def test_bodies_that_do_not_reproduce_the_source_fail(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.STRUCTURAL_VERIFY)
        key, row = sorted(bench.stored().items())[0]
        bench.stored()[key] = msgspec.structs.replace(
            row, body=row.body.replace(b"Article", b"Art.")
        )
        with pytest.raises(StopVerifyFailed, match="do not reproduce the source"):
            await bench.run(Phase.STRUCTURAL_VERIFY)


class TestCloseoutPhase:
    async def test_writes_the_closeout_report_and_the_runs_index_entry(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.CLOSEOUT)
        pins_before = dict(bench.sidecar.pins)
        out = await bench.run(Phase.CLOSEOUT)
        assert out.pins == {Pin.ALL_PHASE_DOCS_UPLOADED: True, Pin.SIDECAR_STATE_FINAL: "success"}
        report = await bench.kb.get(closeout_doc_id(RUN_ID))
        assert isinstance(report, CloseoutReport)
        assert (report.run_id, report.doc_id, report.mode) == (RUN_ID, DOC_ID, Mode.DRY_RUN)
        assert report.pins == pins_before
        assert report.phase_docs == tuple(
            phase_doc_id(RUN_ID, p, i) for i, p in enumerate(PHASES[:-1], start=1)
        )
        entry = await bench.kb.get(runs_index_id(RUN_ID))
        assert isinstance(entry, RunsIndexEntry)
        assert entry.state == RunState.CLOSEOUT_REPORTED.value
        assert entry.iu_count == 12
        assert entry.change_set_id == bench.pin(Pin.CHANGE_SET_ID)
        assert entry.closeout_kb_id == closeout_doc_id(RUN_ID)
        assert entry.closed_at == report.closed_at

    async def test_refuses_when_a_phase_doc_is_not_recorded(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.CLOSEOUT)
        docs = dict(bench.sidecar.phase_docs)
        del docs[Phase.MARK]
        bench.sidecar = msgspec.structs.replace(bench.sidecar, phase_docs=docs)
        with pytest.raises(StopVerifyFailed, match="missing from the KB: mark"):
            await bench.run(Phase.CLOSEOUT)
        assert await bench.kb.list("runs-index") == []
        assert closeout_doc_id(RUN_ID) not in await bench.kb.list("")

    async def test_refuses_when_a_recorded_phase_doc_is_gone_from_the_kb(self) -> None:
        bench = make_bench()
        await bench.run_until(Phase.CLOSEOUT)
        del bench.kb._docs[bench.sidecar.phase_docs[Phase.WRITE_VERIFY]]
        with pytest.raises(StopVerifyFailed, match="write_verify"):
            await bench.run(Phase.CLOSEOUT)
        assert await bench.kb.list("runs-index") == []
