"""Phase contracts: the order of the walk, the pins each phase requires and
produces, where the gates stand, and what the runner does with a plan that is
not one."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import pytest

from cutter.core.errors import StopCode, StopContractViolated
from cutter.core.kbdocs import PhaseDoc, StopDoc, phase_doc_id, stop_doc_id
from cutter.core.mode import Mode
from cutter.core.ports import Target
from cutter.core.route import (
    CONTRACTS,
    GATE_AFTER,
    GATE_STATE,
    PHASES,
    Gate,
    Phase,
    Pin,
    PinValue,
    check_inputs,
    check_outputs,
    next_phase,
)
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
from cutter.walk.phases import BODIES, PhaseContext, Services
from tests._gates import UncheckedGates
from tests._harness import DOC_ID, SD_ID, SV_ID, FakeClock, build_runner, seed_discoverer

# The walk as DESIGN.md §3 tables it: the order, and the pins each phase adds (at least).
DESIGN_WALK: tuple[tuple[str, frozenset[str]], ...] = (
    ("source_pin", frozenset({"source_version_id", "source_sha"})),
    ("mark", frozenset({"candidate_count", "region_sha"})),
    ("cutplan", frozenset({"manifest_digest"})),
    ("pre_write_backup", frozenset({"backup_id"})),
    ("grant_probe", frozenset({"writer_digest"})),
    ("cut_leg_a", frozenset({"change_set_id"})),
    ("structural_verify", frozenset()),
    ("leg_b_record", frozenset({"manifest_envelope_id"})),
    ("write_verify", frozenset({"verify_result_id"})),
    ("lifecycle_enact", frozenset({"lifecycle_enacted", "lifecycle_enacted_count"})),
    ("closeout", frozenset({"all_phase_docs_uploaded", "sidecar_state_final"})),
)

REQUIRED = [(phase, pin) for phase in PHASES for pin in sorted(CONTRACTS[phase].requires)]
PRODUCED = [(phase, pin) for phase in PHASES for pin in sorted(CONTRACTS[phase].produces)]


def every_pin() -> dict[Pin, PinValue]:
    return {pin: f"value-of-{pin.value}" for pin in Pin}


def every_pin_but(phase: Phase) -> dict[Pin, PinValue]:
    """All pins but the phase's own: what the run holds when the phase starts."""
    return {p: v for p, v in every_pin().items() if p not in CONTRACTS[phase].produces}


def outputs_of(phase: Phase) -> dict[Pin, PinValue]:
    return {pin: f"new-{pin.value}" for pin in CONTRACTS[phase].produces}


def ids(pairs: list[tuple[Phase, Pin]]) -> list[str]:
    return [f"{phase.value}-{pin.value}" for phase, pin in pairs]


class TestContractTable:
    def test_every_phase_has_a_contract_and_a_body(self) -> None:
        assert set(CONTRACTS) == set(Phase)
        assert set(BODIES) == set(Phase)
        assert all(CONTRACTS[p].produces for p in PHASES), "a phase that pins nothing"

    def test_phases_walk_in_the_designed_order(self) -> None:
        assert [p.value for p in PHASES] == [name for name, _ in DESIGN_WALK]

    @pytest.mark.parametrize(("name", "pins"), DESIGN_WALK, ids=[n for n, _ in DESIGN_WALK])
    def test_each_phase_produces_at_least_the_designed_pins(
        self, name: str, pins: frozenset[str]
    ) -> None:
        assert pins <= {p.value for p in CONTRACTS[Phase(name)].produces}

    def test_every_required_pin_is_produced_by_an_earlier_phase(self) -> None:
        produced: set[Pin] = set()
        for phase in PHASES:
            missing = CONTRACTS[phase].requires - produced
            assert not missing, f"{phase} requires {sorted(missing)} before any phase pins it"
            produced |= CONTRACTS[phase].produces

    def test_each_pin_has_exactly_one_producer(self) -> None:
        producers = {pin: [p for p in PHASES if pin in CONTRACTS[p].produces] for pin in Pin}
        assert {pin: len(ps) for pin, ps in producers.items() if len(ps) != 1} == {}


class TestCheckInputs:
    @pytest.mark.parametrize(("phase", "pin"), REQUIRED, ids=ids(REQUIRED))
    def test_refuses_a_missing_pin_naming_it(self, phase: Phase, pin: Pin) -> None:
        pins = every_pin()
        del pins[pin]
        with pytest.raises(StopContractViolated, match=f"{phase.value} requires missing pins: "):
            check_inputs(phase, pins)
        with pytest.raises(StopContractViolated, match=pin.value):
            check_inputs(phase, pins)

    def test_names_every_missing_pin(self) -> None:
        with pytest.raises(StopContractViolated) as caught:
            check_inputs(Phase.CUTPLAN, {})
        assert caught.value.stop_code is StopCode.CONTRACT_VIOLATED
        for pin in CONTRACTS[Phase.CUTPLAN].requires:
            assert pin.value in caught.value.message

    @pytest.mark.parametrize("phase", PHASES)
    def test_accepts_exactly_the_required_pins(self, phase: Phase) -> None:
        check_inputs(phase, {pin: "x" for pin in CONTRACTS[phase].requires})


class TestCheckOutputs:
    @pytest.mark.parametrize("phase", PHASES)
    def test_accepts_the_declared_pins(self, phase: Phase) -> None:
        check_outputs(phase, every_pin_but(phase), outputs_of(phase))

    @pytest.mark.parametrize(("phase", "pin"), PRODUCED, ids=ids(PRODUCED))
    def test_refuses_a_missing_declared_pin(self, phase: Phase, pin: Pin) -> None:
        produced = outputs_of(phase)
        del produced[pin]
        with pytest.raises(StopContractViolated, match=f"did not produce declared pins: {pin}"):
            check_outputs(phase, every_pin_but(phase), produced)

    @pytest.mark.parametrize("phase", PHASES)
    def test_refuses_an_undeclared_pin(self, phase: Phase) -> None:
        stranger = next(p for p in Pin if p not in CONTRACTS[phase].produces)
        produced = {**outputs_of(phase), stranger: "sneaked in"}
        with pytest.raises(StopContractViolated, match=f"undeclared pins: {stranger.value}"):
            check_outputs(phase, every_pin_but(phase), produced)

    @pytest.mark.parametrize(("phase", "pin"), PRODUCED, ids=ids(PRODUCED))
    def test_refuses_a_change_to_a_write_once_pin(self, phase: Phase, pin: Pin) -> None:
        pins = {**every_pin_but(phase), pin: "pinned before"}
        with pytest.raises(StopContractViolated, match=f"change write-once pins: {pin.value}"):
            check_outputs(phase, pins, outputs_of(phase))

    @pytest.mark.parametrize("phase", PHASES)
    def test_a_replay_that_reproduces_its_pins_is_accepted(self, phase: Phase) -> None:
        produced = outputs_of(phase)
        check_outputs(phase, {**every_pin_but(phase), **produced}, produced)


class TestNextPhase:
    def test_walks_the_phases_in_order_then_ends(self) -> None:
        walked: list[Phase] = []
        while (phase := next_phase(tuple(walked))) is not None:
            walked.append(phase)
        assert walked == list(PHASES)
        assert len(walked) == 11

    @pytest.mark.parametrize(
        "passed",
        [
            pytest.param((Phase.MARK,), id="skips-the-first"),
            pytest.param((Phase.SOURCE_PIN, Phase.CUTPLAN), id="skips-one"),
            pytest.param((Phase.MARK, Phase.SOURCE_PIN), id="swapped"),
            pytest.param((Phase.SOURCE_PIN, Phase.SOURCE_PIN), id="twice"),
            pytest.param((*PHASES, Phase.CLOSEOUT), id="past-the-end"),
            pytest.param(PHASES[:5] + PHASES[6:7], id="skips-leg-a"),
        ],
    )
    def test_refuses_phases_passed_out_of_order(self, passed: tuple[Phase, ...]) -> None:
        with pytest.raises(StopContractViolated, match="out of order"):
            next_phase(passed)

    def test_every_prefix_is_accepted_and_every_other_permutation_of_three_refused(self) -> None:
        for count in range(len(PHASES) + 1):
            assert next_phase(PHASES[:count]) == (PHASES[count] if count < 11 else None)
        for perm in itertools.permutations(PHASES[:3]):
            if perm == PHASES[:3]:
                continue
            with pytest.raises(StopContractViolated):
                next_phase(perm)


class TestGates:
    def test_sg1_stands_after_grant_probe_and_before_the_first_write(self) -> None:
        assert GATE_AFTER[Phase.GRANT_PROBE] is Gate.SG_1
        assert PHASES[PHASES.index(Phase.GRANT_PROBE) + 1] is Phase.CUT_LEG_A
        assert GATE_STATE[Gate.SG_1] is RunState.AWAITING_CUT_AUTHORIZATION

    def test_sg2_stands_after_write_verify_and_before_lifecycle_enact(self) -> None:
        assert GATE_AFTER[Phase.WRITE_VERIFY] is Gate.SG_2
        assert PHASES[PHASES.index(Phase.WRITE_VERIFY) + 1] is Phase.LIFECYCLE_ENACT
        assert GATE_STATE[Gate.SG_2] is RunState.AWAITING_LIFECYCLE_AUTHORIZATION

    def test_there_are_exactly_two_gates(self) -> None:
        assert dict(GATE_AFTER) == {Phase.GRANT_PROBE: Gate.SG_1, Phase.WRITE_VERIFY: Gate.SG_2}
        assert set(GATE_STATE) == set(Gate)


class _ReadLog(dict[Pin, PinValue]):
    """A pins mapping that notes every pin a body looks up."""

    def __init__(self, pins: dict[Pin, PinValue], reads: set[Pin]) -> None:
        super().__init__(pins)
        self.reads = reads

    def __getitem__(self, key: Pin) -> PinValue:
        self.reads.add(key)
        return super().__getitem__(key)

    # dict.get is overloaded; one plain signature is enough for a test double.
    def get(self, key: Pin, default: object = None) -> object:  # type: ignore[override]
        self.reads.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, Pin):
            self.reads.add(key)
        return super().__contains__(key)


async def pins_each_body_reads() -> dict[Phase, set[Pin]]:
    """Walk the eleven bodies over in-memory stores, noting the pins each reads."""
    disc = seed_discoverer(12)
    sources = InMemorySources()
    sources.seed(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    kb = InMemoryKnowledgeBase()
    clock = FakeClock()
    services = Services(
        target=Target(sources=sources, ius=InMemoryIUStore(), ledger=InMemoryLedger()),
        kb=kb,
        discoverer=disc,
        grants=StaticGrantProbe(),
        clock=clock,
        gates=UncheckedGates(),
    )
    now = clock()
    sidecar = Sidecar(
        run_id="run-contracts",
        doc_id=DOC_ID,
        mode=Mode.DRY_RUN,
        started_by="operator-ann",
        created_at=now,
        updated_at=now,
        state=RunState.RUNNING,
    )
    reads: dict[Phase, set[Pin]] = {}
    for ordinal, phase in enumerate(PHASES, start=1):
        reads[phase] = set()
        watched = msgspec.structs.replace(sidecar, pins=_ReadLog(sidecar.pins, reads[phase]))
        out = await BODIES[phase](PhaseContext(watched, services))
        kb_id = phase_doc_id(sidecar.run_id, phase, ordinal)
        await kb.put(
            kb_id,
            PhaseDoc(
                run_id=sidecar.run_id,
                phase=phase,
                ordinal=ordinal,
                mode=sidecar.mode,
                passed_at=clock(),
                pins_added=out.pins,
                manifest=out.manifest,
            ),
        )
        sidecar = amend(
            sidecar,
            at=clock(),
            pins={**sidecar.pins, **out.pins},
            phases_passed=(*sidecar.phases_passed, phase),
            phase_docs={**sidecar.phase_docs, phase: kb_id},
        )
    return reads


class TestContractsMatchTheBodies:
    @pytest.mark.anyio
    async def test_each_body_reads_only_pins_its_contract_requires(self) -> None:
        # check_inputs can only refuse a phase whose inputs are missing if the
        # contract names every pin the body reads.
        reads = await pins_each_body_reads()
        assert {Pin.SOURCE_VERSION_ID, Pin.SOURCE_SHA} <= reads[Phase.MARK], "log not working"
        undeclared = {
            phase.value: sorted(p.value for p in reads[phase] - CONTRACTS[phase].requires)
            for phase in PHASES
            if reads[phase] - CONTRACTS[phase].requires
        }
        assert undeclared == {}


def not_tiling(kind: str) -> InMemoryDiscoverer:
    seeded = seed_discoverer(12)
    cands = list(seeded.candidates)
    shift = -7 if kind == "overlap" else 7
    cands[6] = msgspec.structs.replace(cands[6], start=cands[6].start + shift)
    return InMemoryDiscoverer(seeded.source, cands)


class TestRunnerHonoursThePlan:
    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", ["gap", "overlap"])
    async def test_candidates_that_do_not_tile_fail_the_run_cleanly(
        self, tmp_path: Path, kind: str
    ) -> None:
        rig = build_runner(tmp_path, disc=not_tiling(kind))
        async with rig.runner:
            sc = await rig.runner.cut(DOC_ID)
        assert sc.state is RunState.FAILED
        assert sc.stop_code == StopCode.PLAN_INVALID.value == "STOP_PLAN_INVALID"
        assert sc.stop is not None
        assert sc.stop.error_id
        assert "\n" not in sc.stop.message
        assert sc.phases_passed == (Phase.SOURCE_PIN, Phase.MARK)
        assert Pin.MANIFEST_DIGEST not in sc.pins
        assert await rig.run_store.load(sc.run_id) == sc
        stop = await rig.kb.get(stop_doc_id(sc.run_id))
        assert isinstance(stop, StopDoc)
        assert stop.code is StopCode.PLAN_INVALID
        assert stop.error_id == sc.stop.error_id
        assert await rig.store.rows(DOC_ID) == []
        assert await rig.ledger.entries() == []

        stored = rig.stored()
        assert [row[0] for row in stored["runs"]] == [sc.run_id], "the sidecar"
        kb_ids = {row[0] for row in stored["kb_docs"]}
        assert {*sc.phase_docs.values(), stop_doc_id(sc.run_id)} <= kb_ids
        assert len(sc.phase_docs) == 2  # source_pin and mark
        for table, rows in stored.items():
            assert "Traceback" not in repr(rows), table
            assert 'File "' not in repr(rows), table
