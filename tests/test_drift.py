"""Drift, table by table: ``cutter.core.drift.compare`` (pure: which pins moved), its
one-line message, and ``cutter.walk.observe.observe`` — what the gatekeeper feeds the
comparison — on a real run paused at each gate: unchanged stores show no drift, and
each change of the world shows as exactly the pin it moves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

import cutter.core.mode
from cutter.core.drift import LABEL_CHARS, compare, drift_message
from cutter.core.kbdocs import PhaseDoc
from cutter.core.mode import Mode
from cutter.core.route import Gate, Phase, Pin, PinValue
from cutter.core.sidecar import DriftItem, DriftUnit, Sidecar
from cutter.walk.observe import MISSING, observe
from cutter.walk.phases import Services
from tests._gates import UncheckedGates
from tests._harness import DOC_ID, OLD_ROW, Paused, Rig, at_gate, build_runner

# -- compare ---------------------------------------------------------------------------

BEFORE: dict[Pin, PinValue] = {
    Pin.SOURCE_VERSION_ID: "sv-1",
    Pin.IU_COUNT: 3,
    Pin.STRUCTURAL_VERIFIED: True,
}

COMPARE_ROWS: list[tuple[str, dict[Pin, PinValue], list[tuple[str, str, str]]]] = [
    ("nothing observed", {}, []),
    ("all as pinned", dict(BEFORE), []),
    ("a subset as pinned", {Pin.IU_COUNT: 3}, []),
    ("a value moved", {Pin.SOURCE_VERSION_ID: "sv-2"}, [("source_version_id", "sv-1", "sv-2")]),
    (
        "a type changed, not the value",
        {Pin.STRUCTURAL_VERIFIED: 1},
        [("structural_verified", "True", "1")],
    ),
    ("an int read as text", {Pin.IU_COUNT: "3"}, [("iu_count", "3", "3")]),
    ("a pin never pinned", {Pin.BACKUP_ID: "bk-1"}, [("backup_id", "None", "bk-1")]),
    (
        "several, in pin order",
        {Pin.SOURCE_VERSION_ID: "sv-2", Pin.BACKUP_ID: "bk-1", Pin.IU_COUNT: 4},
        [
            ("backup_id", "None", "bk-1"),
            ("iu_count", "3", "4"),
            ("source_version_id", "sv-1", "sv-2"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("observed", "expected"),
    [(o, e) for _, o, e in COMPARE_ROWS],
    ids=[name for name, _, _ in COMPARE_ROWS],
)
def test_compare(observed: dict[Pin, PinValue], expected: list[tuple[str, str, str]]) -> None:
    items = compare(BEFORE, observed)
    assert [(i.pin, i.before, i.after) for i in items] == expected
    assert all(i.units == () for i in items)


LONG = "Article 12 " + "x" * 60


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ((DriftItem(pin="writer_digest", before="a", after="b"),), "drift in writer_digest"),
        (
            (
                DriftItem(
                    pin="verify_result_id",
                    before="a",
                    after="b",
                    units=(DriftUnit(label="Article 4", change="changed"),),
                ),
                DriftItem(pin="backup_id", before="a", after="b"),
            ),
            "drift in verify_result_id (changed Article 4); backup_id",
        ),
        (
            (
                DriftItem(
                    pin="source_sha",
                    before="a",
                    after="b",
                    units=(DriftUnit(label=LONG, change="vanished"),),
                ),
            ),
            f"drift in source_sha (vanished {LONG[:LABEL_CHARS]}…)",
        ),
    ],
    ids=["no units", "units and none", "a long label cut"],
)
def test_drift_message(items: tuple[DriftItem, ...], expected: str) -> None:
    assert drift_message(items) == expected


# -- observe: what a run paused at a gate reads back -----------------------------------


def services_of(rig: Rig) -> Services:
    """What the gatekeeper of a live run reads: the rig's own target (no sandbox)."""
    c = rig.runner.config
    return Services(
        target=c.target,
        kb=c.kb,
        discoverer=c.discoverer,
        grants=c.grants,
        clock=c.clock,
        gates=UncheckedGates(),
    )


@pytest.mark.anyio
async def test_observe_at_sg1_of_a_dry_run_matches_its_pins(rig_at_sg1: Paused) -> None:
    """A dry run has written nothing to the target before SG_1: the real stores read
    back what it pinned."""
    observed = await observe(services_of(rig_at_sg1.rig), rig_at_sg1.run, Gate.SG_1)
    assert set(observed) == {
        Pin.SOURCE_VERSION_ID,
        Pin.SOURCE_SHA,
        Pin.MANIFEST_DIGEST,
        Pin.WRITER_DIGEST,
        Pin.BACKUP_ID,
    }
    assert compare(rig_at_sg1.run.pins, observed) == ()


Change = Callable[[Rig, Sidecar], Awaitable[None]]


async def publish_new_version(rig: Rig, _run: Sidecar) -> None:
    rig.sources.seed(DOC_ID, rig.disc.source + b"\nArticle 99. Late.\n", sv_id="sv-late")


async def change_bytes_in_place(rig: Rig, run: Sidecar) -> None:
    sv_id = str(run.pins[Pin.SOURCE_VERSION_ID])
    rig.sources._content[sv_id] = rig.sources._content[sv_id].replace(b"Article", b"Artikel", 1)


async def remove_stored_bytes(rig: Rig, run: Sidecar) -> None:
    del rig.sources._content[str(run.pins[Pin.SOURCE_VERSION_ID])]


async def change_writer_grants(rig: Rig, _run: Sidecar) -> None:
    rig.grants.grants = (*rig.grants.grants, "ledger:update")


async def lose_the_manifest(rig: Rig, run: Sidecar) -> None:
    plan = await rig.kb.get(run.phase_docs[Phase.CUTPLAN])
    assert isinstance(plan, PhaseDoc)
    await rig.kb.put(run.phase_docs[Phase.CUTPLAN], msgspec.structs.replace(plan, manifest=None))


async def add_a_row(rig: Rig, _run: Sidecar) -> None:
    await rig.store.write_staged([OLD_ROW])


async def change_a_staged_row(rig: Rig, run: Sidecar) -> None:
    [first, *_] = await rig.store.change_set(str(run.pins[Pin.CHANGE_SET_ID]))
    rig.store._rows[(first.doc_id, first.sv_id, first.ordinal)] = msgspec.structs.replace(
        first, region_sha="0" * 64
    )


@dataclass(frozen=True)
class ObserveRow:
    name: str
    gate: Gate
    change: Change
    moved: set[Pin]
    after: str | None = None  # the value observed for the moved pin, where fixed


async def nothing(_rig: Rig, _run: Sidecar) -> None:
    return None


OBSERVE_ROWS = [
    ObserveRow("unchanged at SG_1", Gate.SG_1, nothing, set()),
    ObserveRow("unchanged at SG_2", Gate.SG_2, nothing, set()),
    ObserveRow("a new version", Gate.SG_1, publish_new_version, {Pin.SOURCE_VERSION_ID}, "sv-late"),
    ObserveRow("a new version at SG_2", Gate.SG_2, publish_new_version, {Pin.SOURCE_VERSION_ID}),
    ObserveRow("bytes changed in place", Gate.SG_1, change_bytes_in_place, {Pin.SOURCE_SHA}),
    ObserveRow("bytes gone", Gate.SG_2, remove_stored_bytes, {Pin.SOURCE_SHA}, MISSING),
    ObserveRow("writer grants", Gate.SG_1, change_writer_grants, {Pin.WRITER_DIGEST}),
    ObserveRow("manifest gone", Gate.SG_1, lose_the_manifest, {Pin.MANIFEST_DIGEST}, MISSING),
    ObserveRow("rows of the document", Gate.SG_1, add_a_row, {Pin.BACKUP_ID}),
    ObserveRow("rows of the document at SG_2 (not pinned there)", Gate.SG_2, add_a_row, set()),
    ObserveRow("a staged row", Gate.SG_2, change_a_staged_row, {Pin.VERIFY_RESULT_ID}),
]


@pytest.mark.anyio
@pytest.mark.parametrize("row", OBSERVE_ROWS, ids=lambda r: r.name)
async def test_observe_feeds_compare_the_pin_a_change_moves(
    row: ObserveRow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    rig = build_runner(tmp_path)
    async with rig.runner:
        run = await at_gate(rig, row.gate, Mode.LIVE)
    await row.change(rig, run)
    drift = compare(run.pins, await observe(services_of(rig), run, row.gate))
    assert {Pin(item.pin) for item in drift} == row.moved
    for item in drift:
        assert item.before == str(run.pins[Pin(item.pin)])
        if row.after is not None:
            assert item.after == row.after
