"""A source version's stored bytes changed while its run waits at a gate: the gate
hashes the bytes themselves (not the hash recorded beside them), stops the run with
STOP_DRIFT naming ``source_sha``, and does not consume the approval."""

from __future__ import annotations

from pathlib import Path

import pytest

import cutter.core.mode
from cutter.core.canonical import sha256_hex
from cutter.core.errors import StopCode
from cutter.core.mode import Mode
from cutter.core.route import Gate, Phase, Pin
from cutter.core.sidecar import DriftUnit, Sidecar
from cutter.core.states import RunState
from cutter.stores.sqlite.target import SqliteSources
from tests._harness import (
    DOC_ID,
    SD_ID,
    SV_ID,
    Rig,
    at_gate,
    build_runner,
    hand_edit,
    open_database_now,
    seed_discoverer,
    stored_rows,
    write_sg1_approval,
    write_sg2_approval,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)


async def on_embedded_sources(tmp_path: Path) -> tuple[Rig, SqliteSources, bytes]:
    """A rig whose source store is the embedded SQLite one, holding the seeded source."""
    disc = seed_discoverer()
    sources = SqliteSources(open_database_now(tmp_path / "target"))
    await sources.publish(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    rig = build_runner(tmp_path / "run", disc=disc, sources=sources)  # type: ignore[arg-type]
    return rig, sources, disc.source


def overwrite_bytes(sources: SqliteSources, data: bytes) -> None:
    """Replace the stored bytes of SV_ID behind the store's back; the sha256 recorded
    beside them stays (the size column follows, as the schema's check demands)."""
    changed = hand_edit(
        sources.db.path,
        "UPDATE source_versions SET content = ?, size = ? WHERE sv_id = ?",
        data,
        len(data),
        SV_ID,
    )
    assert changed == 1


async def at_sg1(rig: Rig) -> Sidecar:
    return await at_gate(rig, Gate.SG_1, Mode.LIVE)


async def test_a_byte_appended_at_sg1_is_drift_and_the_approval_stays_unused(
    tmp_path: Path,
) -> None:
    rig, sources, source = await on_embedded_sources(tmp_path)
    async with rig.runner:
        sc = await at_sg1(rig)
        kb_id = await write_sg1_approval(rig, sc.run_id)
        overwrite_bytes(sources, source + b"!")
        target_before = stored_rows(sources.db.path)
        sc = await rig.runner.resume(sc.run_id, kb_id)
    assert sc.state is RunState.FAILED
    assert sc.stop_code == StopCode.DRIFT
    assert sc.stop is not None
    assert "source_sha" in sc.stop.message
    assert [(d.pin, d.before, d.after) for d in sc.drift] == [
        ("source_sha", sc.pins[Pin.SOURCE_SHA], sha256_hex(source + b"!"))
    ]
    assert sc.drift[0].units == (DriftUnit(label=f"bytes after {len(source)}", change="appeared"),)
    assert Phase.CUT_LEG_A not in sc.phases_passed
    assert await rig.run_store.consumed_by(kb_id) is None
    assert await rig.store.rows(DOC_ID) == []
    assert await rig.ledger.entries() == []
    assert stored_rows(sources.db.path) == target_before


async def test_bytes_changed_in_place_at_sg1_name_the_units_they_fall_in(
    tmp_path: Path,
) -> None:
    rig, sources, source = await on_embedded_sources(tmp_path)
    async with rig.runner:
        sc = await at_sg1(rig)
        units = rig.disc.candidates
        kb_id = await write_sg1_approval(rig, sc.run_id)
        edited = bytearray(source)
        for unit in (units[2], units[7]):  # one byte inside each of two units
            edited[unit.start + 1] ^= 0x01
        overwrite_bytes(sources, bytes(edited))
        sc = await rig.runner.resume(sc.run_id, kb_id)
    assert sc.stop_code == StopCode.DRIFT
    [item] = sc.drift
    assert item.pin == "source_sha"
    assert item.units == (
        DriftUnit(label=units[2].label, change="changed"),
        DriftUnit(label=units[7].label, change="changed"),
    )
    assert sc.stop is not None
    assert f"source_sha (changed {units[2].label}, changed {units[7].label})" in sc.stop.message
    # Stored as the run's record: the stored sidecar reads back with the names.
    assert (await rig.run_store.load(sc.run_id)).drift == sc.drift


async def test_many_drifted_units_are_named_on_one_line(tmp_path: Path) -> None:
    rig, sources, source = await on_embedded_sources(tmp_path)
    async with rig.runner:
        sc = await at_sg1(rig)
        kb_id = await write_sg1_approval(rig, sc.run_id)
        overwrite_bytes(sources, bytes(b ^ 0x01 for b in source))
        sc = await rig.runner.resume(sc.run_id, kb_id)
    assert sc.stop is not None
    [item] = sc.drift
    assert len(item.units) == len(rig.disc.candidates)
    assert "\n" not in sc.stop.message
    assert f"and {len(item.units) - 5} more)" in sc.stop.message


async def test_stored_bytes_removed_at_sg2_are_drift(tmp_path: Path) -> None:
    rig, sources, _ = await on_embedded_sources(tmp_path)
    async with rig.runner:
        sc = await at_sg1(rig)
        sc = await rig.runner.resume(sc.run_id, await write_sg1_approval(rig, sc.run_id))
        assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        kb_id = await write_sg2_approval(rig, sc.run_id)
        # The version's row gone, as a hand edit without foreign keys can do.
        assert hand_edit(sources.db.path, "DELETE FROM source_versions WHERE sv_id = ?", SV_ID)
        sc = await rig.runner.resume(sc.run_id, kb_id)
    assert sc.state is RunState.FAILED
    assert sc.stop_code == StopCode.DRIFT
    # Without its row the version is gone too: both pins are missing.
    assert [(d.pin, d.after) for d in sc.drift] == [
        ("source_sha", "<missing>"),
        ("source_version_id", "<missing>"),
    ]
    assert Phase.LIFECYCLE_ENACT not in sc.phases_passed
    assert await rig.run_store.consumed_by(kb_id) is None


async def test_unchanged_bytes_pass_the_gate(tmp_path: Path) -> None:
    rig, _, _ = await on_embedded_sources(tmp_path)
    async with rig.runner:
        sc = await at_sg1(rig)
        kb_id = await write_sg1_approval(rig, sc.run_id)
        sc = await rig.runner.resume(sc.run_id, kb_id)
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop
    assert await rig.run_store.consumed_by(kb_id) == sc.run_id


async def test_a_review_of_changed_source_bytes_says_which_units_will_drift(
    tmp_path: Path,
) -> None:
    rig, sources, source = await on_embedded_sources(tmp_path)
    async with rig.runner:
        sc = await at_sg1(rig)
        units = rig.disc.candidates
        edited = bytearray(source)
        edited[units[4].start + 1] ^= 0x01
        overwrite_bytes(sources, bytes(edited))
        _, review = await rig.runner.review(sc.run_id)
    [note] = review.notes
    assert f"approving stops at drift (changed {units[4].label})" in note
    assert len(review.units) == len(units)
    assert review.gate == "SG_1"
