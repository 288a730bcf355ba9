"""The embedded record stores: the KB, the run store and the kill switch.

Contract tests run against both implementations (in-memory and file); the
rest covers what only files can do wrong: corruption, restarts, races between
processes, temp files, and a kill switch that cannot be read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cutter import codec
from cutter.errors import (
    ApprovalConsumedAlready,
    CorruptRecord,
    InvalidIdentifier,
    StopCode,
    StorageFull,
    UnknownRun,
)
from cutter.kbdocs import (
    Approval,
    Decision,
    KBDoc,
    PhaseDoc,
    RequestSubject,
    SovereignRequest,
    StopDoc,
    phase_doc_id,
    request_doc_id,
    runs_index_id,
    stop_doc_id,
)
from cutter.mode import Mode
from cutter.ports import KnowledgeBase, RunStore
from cutter.sidecar import ApprovalUse
from cutter.states import RunState
from cutter.stores.atomic import create_exclusive, write_atomic
from cutter.stores.file_primitives import create_once, inside_root
from cutter.stores.files import (
    FileKillSwitch,
    FileKnowledgeBase,
    FileRunStore,
    journal_name,
)
from cutter.stores.memory_records import InMemoryKnowledgeBase, InMemoryRunStore
from cutter.walk import Gate, Phase, Pin
from tests._harness import paused_sidecar as sidecar

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
APPROVAL_ID = "runs/run-a/gates/SG_1/approvals/alice"


# -- builders ---------------------------------------------------------------------------


def use(approval_kb_id: str = APPROVAL_ID) -> ApprovalUse:
    return ApprovalUse(
        approval_kb_id=approval_kb_id,
        approver="alice",
        decision=Decision.APPROVE,
        peer="alice@host",
        consumed_at=T0 + timedelta(minutes=5),
    )


def phase_doc(run_id: str = "run-a") -> PhaseDoc:
    return PhaseDoc(
        run_id=run_id,
        phase=Phase.SOURCE_PIN,
        ordinal=0,
        mode=Mode.DRY_RUN,
        passed_at=T0,
        pins_added={Pin.SOURCE_SHA: "ab" * 32, Pin.SOURCE_SIZE: 120},
        note="pinned",
    )


def approval_doc(run_id: str = "run-a") -> Approval:
    return Approval(
        run_id=run_id,
        gate=Gate.SG_1,
        request_digest="d" * 64,
        nonce="n" * 32,
        decision=Decision.APPROVE,
        approver="alice",
        reason="looks right",
        issued_at=T0,
    )


def request_doc(run_id: str = "run-a") -> SovereignRequest:
    subject = RequestSubject(
        run_id=run_id,
        gate=Gate.SG_1,
        mode=Mode.DRY_RUN,
        doc_id="doc-1",
        started_by="operator",
        source_version_id="sv-1",
        source_sha="ab" * 32,
        manifest_digest="cd" * 32,
        iu_count=3,
        writer_digest="ef" * 32,
        verify_result_id=None,
        nonce="n" * 32,
        opened_at=T0,
    )
    return SovereignRequest(
        run_id=run_id, subject=subject, request_digest=subject.request_digest, required_approvals=2
    )


def stop_doc(run_id: str = "run-a") -> StopDoc:
    return StopDoc(
        run_id=run_id,
        doc_id="doc-1",
        code=StopCode.DRIFT,
        message="source moved",
        error_id=None,
        at=T0,
    )


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def temp_files(root: Path) -> list[str]:
    return [p for p in tree(root) if p.endswith(".tmp") or Path(p).name.startswith(".")]


# -- fixtures: both implementations -----------------------------------------------------


@dataclass
class KBCase:
    kb: KnowledgeBase
    root: Path  # everything the test may touch; must stay clean of escapes


@dataclass
class RunCase:
    store: RunStore
    root: Path
    reopen: Callable[[], RunStore]  # a second handle on the same records


@pytest.fixture(params=["memory", "file"])
def kb_case(request: pytest.FixtureRequest, tmp_path: Path) -> KBCase:
    if request.param == "memory":
        return KBCase(InMemoryKnowledgeBase(), tmp_path)
    return KBCase(FileKnowledgeBase(tmp_path / "kb"), tmp_path)


@pytest.fixture(params=["memory", "file"])
def run_case(request: pytest.FixtureRequest, tmp_path: Path) -> RunCase:
    if request.param == "memory":
        store = InMemoryRunStore()
        return RunCase(store, tmp_path, lambda: store)
    root = tmp_path / "store"
    return RunCase(FileRunStore(root), tmp_path, lambda: FileRunStore(root))


# -- knowledge base contract ------------------------------------------------------------

DOCS: list[tuple[str, KBDoc]] = [
    (phase_doc_id("run-a", Phase.SOURCE_PIN, 0), phase_doc()),
    (request_doc_id("run-a", Gate.SG_1), request_doc()),
    (APPROVAL_ID, approval_doc()),
    (stop_doc_id("run-a"), stop_doc()),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("kb_id", "doc"), DOCS, ids=[type(d).__name__ for _, d in DOCS])
async def test_kb_round_trip(kb_case: KBCase, kb_id: str, doc: KBDoc) -> None:
    await kb_case.kb.put(kb_id, doc)
    assert await kb_case.kb.get(kb_id) == doc
    await kb_case.kb.put(kb_id, doc)  # a replay is harmless
    assert await kb_case.kb.get(kb_id) == doc


@pytest.mark.anyio
async def test_kb_put_replaces_whole_doc(kb_case: KBCase) -> None:
    kb_id = stop_doc_id("run-a")
    await kb_case.kb.put(kb_id, stop_doc())
    changed = msgspec.structs.replace(stop_doc(), message="operator abort")
    await kb_case.kb.put(kb_id, changed)
    assert await kb_case.kb.get(kb_id) == changed


@pytest.mark.anyio
async def test_kb_shares_no_state_with_callers(kb_case: KBCase) -> None:
    doc = phase_doc()
    await kb_case.kb.put("runs/run-a/phases/00-source_pin", doc)
    doc.pins_added[Pin.IU_COUNT] = 99  # frozen struct, mutable dict: the store must not care
    first = await kb_case.kb.get("runs/run-a/phases/00-source_pin")
    assert isinstance(first, PhaseDoc)
    assert Pin.IU_COUNT not in first.pins_added
    first.pins_added[Pin.BACKUP_ID] = "b"
    second = await kb_case.kb.get("runs/run-a/phases/00-source_pin")
    assert second == phase_doc()


@pytest.mark.anyio
async def test_kb_refuses_a_doc_it_could_not_read_back(kb_case: KBCase) -> None:
    bad = msgspec.structs.replace(stop_doc(), run_id=123)  # no type check at construction
    with pytest.raises(CorruptRecord, match="not written"):
        await kb_case.kb.put("runs/run-a/stop", bad)
    with pytest.raises(KeyError):
        await kb_case.kb.get("runs/run-a/stop")
    assert await kb_case.kb.list("") == []


@pytest.mark.anyio
async def test_kb_get_missing_raises_key_error(kb_case: KBCase) -> None:
    with pytest.raises(KeyError) as info:
        await kb_case.kb.get("runs/run-a/stop")
    assert info.value.args == ("runs/run-a/stop",)
    await kb_case.kb.put("runs/run-a/stop", stop_doc())
    with pytest.raises(KeyError):
        await kb_case.kb.get("runs/run-a")  # a directory on disk is not a doc


@pytest.mark.anyio
async def test_kb_list_by_prefix(kb_case: KBCase) -> None:
    ids = [
        "runs/run-1/phases/00-source_pin",
        "runs/run-1/phases/01-mark",
        "runs/run-1/stop",
        "runs/run-10/stop",
        runs_index_id("run-1"),
        "runs",
    ]
    for kb_id in reversed(ids):
        await kb_case.kb.put(kb_id, stop_doc())
    kb = kb_case.kb
    assert await kb.list("") == sorted(ids)
    assert await kb.list("runs/run-1") == [
        "runs/run-1/phases/00-source_pin",
        "runs/run-1/phases/01-mark",
        "runs/run-1/stop",
    ]
    assert await kb.list("runs/run-1/phases") == ids[:2]
    assert await kb.list("runs/run-1/stop") == ["runs/run-1/stop"]
    assert await kb.list("runs") == sorted(i for i in ids if not i.startswith("runs-index"))
    assert await kb.list("runs/run-2") == []
    assert await kb.list("runs/run-1/phases/00") == []  # segments, not string prefixes


HOSTILE_KB_IDS = [
    "../x",
    "a/../b",
    "..",
    ".",
    "/abs",
    "a\x00b",
    "a\nb",
    "a\x1bb",
    "a\x7f",
    "x" * 600,
    "",
    "a//b",
    "a/",
    ".hidden",
    "a\\b",
    "a~b",
    "a b",
    "caf\u00e9",
    "a/b.json/c",  # would need a directory where "a/b" keeps its file
    "/".join("s" * 9),  # more than 8 segments
]


@pytest.mark.anyio
@pytest.mark.parametrize("kb_id", HOSTILE_KB_IDS)
async def test_kb_refuses_hostile_ids(kb_case: KBCase, kb_id: str) -> None:
    if kb_id == "/abs":
        kb_id = str(kb_case.root / "escaped")
    kb = kb_case.kb
    with pytest.raises(InvalidIdentifier):
        await kb.put(kb_id, stop_doc())
    with pytest.raises(InvalidIdentifier):
        await kb.get(kb_id)
    if kb_id:
        with pytest.raises(InvalidIdentifier):
            await kb.list(kb_id)
    assert tree(kb_case.root) == []
    assert await kb.list("") == []


# -- run store contract -----------------------------------------------------------------


@pytest.mark.anyio
async def test_run_store_round_trip(run_case: RunCase) -> None:
    store = run_case.store
    assert await store.run_ids() == []
    await store.save(sidecar("run-b"))
    await store.save(sidecar("run-a"))
    assert await store.load("run-a") == sidecar("run-a")
    assert await store.run_ids() == ["run-a", "run-b"]
    later = msgspec.structs.replace(sidecar("run-a"), state=RunState.RUNNING)
    await store.save(later)
    assert await run_case.reopen().load("run-a") == later


@pytest.mark.anyio
async def test_run_store_load_missing(run_case: RunCase) -> None:
    with pytest.raises(UnknownRun) as info:
        await run_case.store.load("run-missing")
    assert info.value.run_id == "run-missing"


@pytest.mark.anyio
async def test_run_store_shares_no_state_with_callers(run_case: RunCase) -> None:
    value = sidecar()
    await run_case.store.save(value)
    value.pins[Pin.IU_COUNT] = 3
    loaded = await run_case.store.load("run-a")
    loaded.pins[Pin.BACKUP_ID] = "b"
    assert await run_case.store.load("run-a") == sidecar()


@pytest.mark.anyio
async def test_save_consuming_consumes_once(run_case: RunCase) -> None:
    store = run_case.store
    assert await store.consumed_by(APPROVAL_ID) is None
    first = sidecar("run-a")
    await store.save_consuming(first, use())
    assert await store.consumed_by(APPROVAL_ID) == "run-a"
    assert await store.load("run-a") == first

    with pytest.raises(ApprovalConsumedAlready) as info:
        await store.save_consuming(sidecar("run-b"), use())
    assert (info.value.run_id, info.value.approval_kb_id) == ("run-b", APPROVAL_ID)
    with pytest.raises(UnknownRun):
        await store.load("run-b")

    # The same run again, with a changed sidecar: refused, and nothing overwritten.
    with pytest.raises(ApprovalConsumedAlready):
        await store.save_consuming(sidecar("run-a", started_by="operator-changed"), use())
    assert await store.load("run-a") == first
    assert await store.run_ids() == ["run-a"]
    assert await store.consumed_by(APPROVAL_ID) == "run-a"

    other = APPROVAL_ID.replace("alice", "bob")
    await store.save_consuming(sidecar("run-b"), use(other))
    assert await store.consumed_by(other) == "run-b"


@pytest.mark.anyio
async def test_consumed_for_lists_a_runs_consumptions(run_case: RunCase) -> None:
    store = run_case.store
    assert await store.consumed_for("run-a") == []
    await store.save_consuming(sidecar("run-a"), use())
    other = APPROVAL_ID.replace("alice", "bob")
    assert await store.consumed_for("run-a") == [APPROVAL_ID]  # read before it grows
    await store.save_consuming(sidecar("run-b"), use(other))
    third = APPROVAL_ID.replace("alice", "cy")
    await store.save_consuming(sidecar("run-a"), use(third))
    assert await store.consumed_for("run-a") == sorted([APPROVAL_ID, third])
    assert await store.consumed_for("run-b") == [other]
    assert await run_case.reopen().consumed_for("run-a") == sorted([APPROVAL_ID, third])
    assert await store.consumed_for("run-c") == []


@pytest.mark.anyio
async def test_concurrent_consumers_in_one_process(run_case: RunCase) -> None:
    store = run_case.store
    won: dict[str, list[str]] = {}

    async def consume(run_id: str) -> None:
        won[run_id] = []
        for n in range(20):
            try:
                await store.save_consuming(sidecar(run_id), use(race_approval(n)))
            except ApprovalConsumedAlready:
                continue
            won[run_id].append(race_approval(n))

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(consume, f"run-{n}")
    claims = sorted(approval for approvals in won.values() for approval in approvals)
    assert claims == [race_approval(n) for n in range(20)]  # each won exactly once
    for run_id, approvals in won.items():
        for approval in approvals:
            assert await store.consumed_by(approval) == run_id


HOSTILE_RUN_IDS = [
    "../x",
    "a/../b",
    "a/b",
    "/abs",
    "a\x00b",
    "a\nb",
    "a\x1bb",
    "x" * 600,
    "",
    "..",
    "a..b",
    ".x",
    "a b",
    "a\\b",
    "a//b",
]


@pytest.mark.anyio
@pytest.mark.parametrize("run_id", HOSTILE_RUN_IDS)
async def test_run_store_refuses_hostile_run_ids(run_case: RunCase, run_id: str) -> None:
    if run_id == "/abs":
        run_id = str(run_case.root / "escaped")
    store = run_case.store
    with pytest.raises(InvalidIdentifier):
        await store.load(run_id)
    with pytest.raises(InvalidIdentifier):
        await store.save(sidecar(run_id))
    with pytest.raises(InvalidIdentifier):
        await store.save_consuming(sidecar(run_id), use())
    assert await store.consumed_by(APPROVAL_ID) is None  # refused before consuming
    assert await store.run_ids() == []
    assert tree(run_case.root) == []


@pytest.mark.anyio
@pytest.mark.parametrize("kb_id", HOSTILE_KB_IDS)
async def test_run_store_refuses_hostile_approval_ids(run_case: RunCase, kb_id: str) -> None:
    if kb_id == "/abs":
        kb_id = str(run_case.root / "escaped")
    store = run_case.store
    with pytest.raises(InvalidIdentifier):
        await store.save_consuming(sidecar(), use(kb_id))
    with pytest.raises(InvalidIdentifier):
        await store.consumed_by(kb_id)
    with pytest.raises(UnknownRun):
        await store.load("run-a")  # refused before saving
    assert tree(run_case.root) == []


@pytest.mark.anyio
async def test_run_store_refuses_a_sidecar_it_could_not_read_back(run_case: RunCase) -> None:
    bad = msgspec.structs.replace(sidecar(), state="SLEEPING")
    with pytest.raises(CorruptRecord, match="not written"):
        await run_case.store.save(bad)
    with pytest.raises(CorruptRecord, match="not written"):
        await run_case.store.save_consuming(bad, use())
    assert await run_case.store.consumed_by(APPROVAL_ID) is None
    assert await run_case.store.run_ids() == []


# -- files only: corruption is reported, never repaired ---------------------------------

GOOD_SIDECAR = codec.encode(sidecar())
GOOD_DOC = codec.encode(stop_doc())
BROKEN: dict[str, bytes] = {
    "truncated": GOOD_SIDECAR[: len(GOOD_SIDECAR) // 2],
    "empty": b"",
    "garbage": b"\x00\xff not json \xfe",
    "json-array": b"[1, 2, 3]",
    "bad-enum": GOOD_DOC.replace(b"STOP_DRIFT", b"STOP_NOT_A_CODE"),
}
NOT_A_SIDECAR = {**BROKEN, "a-kb-doc": GOOD_DOC}
NOT_A_KB_DOC = {**BROKEN, "a-sidecar": GOOD_SIDECAR, "doc-truncated": GOOD_DOC[:-1]}


def assert_names(exc: CorruptRecord, path: Path) -> None:
    assert exc.location == str(path)
    assert str(path) in str(exc)


@pytest.mark.anyio
@pytest.mark.parametrize("content", NOT_A_SIDECAR.values(), ids=NOT_A_SIDECAR.keys())
async def test_corrupt_sidecar_is_reported_and_left_alone(tmp_path: Path, content: bytes) -> None:
    store = FileRunStore(tmp_path)
    path = store.sidecar_path("run-a")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(CorruptRecord) as info:
        await store.load("run-a")
    assert_names(info.value, path)
    assert path.read_bytes() == content
    assert await store.run_ids() == ["run-a"]  # not hidden either


@pytest.mark.anyio
async def test_sidecar_under_the_wrong_name_is_corrupt(tmp_path: Path) -> None:
    store = FileRunStore(tmp_path)
    path = store.sidecar_path("run-a")
    path.parent.mkdir(parents=True)
    path.write_bytes(codec.encode(sidecar("run-b")))
    with pytest.raises(CorruptRecord) as info:
        await store.load("run-a")
    assert_names(info.value, path)


@pytest.mark.anyio
@pytest.mark.parametrize("content", NOT_A_SIDECAR.values(), ids=NOT_A_SIDECAR.keys())
async def test_corrupt_journal_is_reported_and_still_blocks(tmp_path: Path, content: bytes) -> None:
    store = FileRunStore(tmp_path)
    path = store.journal_path(APPROVAL_ID)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(CorruptRecord) as info:
        await store.consumed_by(APPROVAL_ID)
    assert_names(info.value, path)
    with pytest.raises(ApprovalConsumedAlready):  # fails closed
        await store.save_consuming(sidecar(), use())
    assert path.read_bytes() == content
    assert await store.run_ids() == []


@pytest.mark.anyio
async def test_journal_record_for_another_approval_is_corrupt(tmp_path: Path) -> None:
    store = FileRunStore(tmp_path)
    other = APPROVAL_ID.replace("alice", "bob")
    await store.save_consuming(sidecar(), use(other))
    path = store.journal_path(APPROVAL_ID)
    path.write_bytes(store.journal_path(other).read_bytes())
    with pytest.raises(CorruptRecord) as info:
        await store.consumed_by(APPROVAL_ID)
    assert_names(info.value, path)


@pytest.mark.anyio
@pytest.mark.parametrize("content", NOT_A_KB_DOC.values(), ids=NOT_A_KB_DOC.keys())
async def test_corrupt_kb_doc_is_reported_and_left_alone(tmp_path: Path, content: bytes) -> None:
    kb = FileKnowledgeBase(tmp_path)
    path = kb.path_of("runs/run-a/stop")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(CorruptRecord) as info:
        await kb.get("runs/run-a/stop")
    assert_names(info.value, path)
    assert path.read_bytes() == content
    assert await kb.list("") == ["runs/run-a/stop"]


# -- files only: layout, restarts, temp files -------------------------------------------


@pytest.mark.anyio
async def test_kb_files_land_where_path_of_says(tmp_path: Path) -> None:
    kb = FileKnowledgeBase(tmp_path)
    await kb.put(APPROVAL_ID, approval_doc())
    path = kb.path_of(APPROVAL_ID)
    assert path == tmp_path / "runs/run-a/gates/SG_1/approvals/alice.json"
    assert msgspec.json.decode(path.read_bytes())["type"] == "approval"
    assert tree(tmp_path)[-1] == "runs/run-a/gates/SG_1/approvals/alice.json"


@pytest.mark.anyio
async def test_kb_replay_with_same_bytes_does_not_rewrite(tmp_path: Path) -> None:
    kb = FileKnowledgeBase(tmp_path)
    await kb.put("runs/run-a/stop", stop_doc())
    before = kb.path_of("runs/run-a/stop").stat()
    await kb.put("runs/run-a/stop", stop_doc())
    after = kb.path_of("runs/run-a/stop").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.anyio
async def test_kb_escape_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "kb"
    root.mkdir()
    (root / "runs").symlink_to(outside, target_is_directory=True)
    kb = FileKnowledgeBase(root)
    with pytest.raises(InvalidIdentifier, match="outside"):
        await kb.put("runs/run-a/stop", stop_doc())
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("points_inside", [True, False])
@pytest.mark.parametrize("root_is_a_symlink", [True, False])
def test_the_confinement_check_answers_as_resolving_both_paths_would(
    tmp_path: Path, depth: int, points_inside: bool, root_is_a_symlink: bool
) -> None:
    """``inside_root`` skips ``Path.resolve`` unless a component below the root is a
    symlink; wherever the link sits and whatever it points at, the answer is the same."""
    real_root = tmp_path / "real-kb"
    (real_root / "elsewhere").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    root = real_root
    if root_is_a_symlink:
        root = tmp_path / "kb"
        root.symlink_to(real_root, target_is_directory=True)
    segments = ["runs", "run-a", "gates", "SG_1"][:depth]
    (root.joinpath(*segments[:-1])).mkdir(parents=True, exist_ok=True)
    target = real_root / "elsewhere" if points_inside else outside
    root.joinpath(*segments).symlink_to(target, target_is_directory=True)
    kb = FileKnowledgeBase(root)
    kb_id = "/".join(["runs", "run-a", "gates", "SG_1", "request"])
    resolved_inside = kb.root.joinpath(*kb_id.split("/")).with_suffix(".json").resolve()
    assert resolved_inside.is_relative_to(root.resolve()) is points_inside
    if points_inside:
        assert kb.path_of(kb_id) == root.joinpath(*kb_id.split("/")).with_suffix(".json")
    else:
        with pytest.raises(InvalidIdentifier, match="outside"):
            kb.path_of(kb_id)


@pytest.mark.anyio
async def test_run_store_escape_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run-a.json").write_bytes(codec.encode(sidecar("run-a")))
    root = tmp_path / "state"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "run-a.json").symlink_to(outside / "run-a.json")
    (root / "consumed").symlink_to(outside, target_is_directory=True)
    store = FileRunStore(root)
    with pytest.raises(InvalidIdentifier, match="outside"):
        await store.load("run-a")
    with pytest.raises(InvalidIdentifier, match="outside"):
        await store.consumed_by(APPROVAL_ID)


@pytest.mark.anyio
async def test_symlinks_that_stay_inside_the_root_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "state"
    store = FileRunStore(root)
    await store.save(sidecar("run-a"))
    (root / "elsewhere").mkdir()
    (root / "runs").rename(root / "elsewhere" / "runs")
    (root / "runs").symlink_to(root / "elsewhere" / "runs", target_is_directory=True)
    assert (await store.load("run-a")).run_id == "run-a"
    with pytest.raises(UnknownRun):
        await store.load("run-b")


def test_inside_root_decides_as_resolving_both_paths_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "state"
    (root / "runs").mkdir(parents=True)
    (root / "up").symlink_to(tmp_path, target_is_directory=True)
    (root / "self").symlink_to(root / "runs", target_is_directory=True)
    inside = [root / "runs" / "a.json", root / "missing" / "a.json", root / "self" / "a.json"]
    outside = [root / ".." / "a.json", root / "up" / "a.json", root / "runs" / ".." / ".." / "a"]
    for path in inside:
        assert inside_root(root, path, "run_id") == path
    for path in outside:
        with pytest.raises(InvalidIdentifier, match="outside"):
            inside_root(root, path, "run_id")
    monkeypatch.chdir(tmp_path)  # a relative root, as --state-dir .cutter gives
    assert inside_root(Path("state"), Path("state/runs/a.json"), "run_id")
    with pytest.raises(InvalidIdentifier, match="outside"):
        inside_root(Path("state"), Path("state/up/a.json"), "run_id")


@pytest.mark.anyio
async def test_listing_skips_temp_and_stray_files(tmp_path: Path) -> None:
    kb = FileKnowledgeBase(tmp_path)
    await kb.put("runs/run-a/stop", stop_doc())
    (tmp_path / "runs/run-a/.stop.json.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "runs/run-a/notes.txt").write_bytes(b"x")
    (tmp_path / "runs/run-a/.hidden.json").write_bytes(b"{}")
    assert await kb.list("") == ["runs/run-a/stop"]

    store = FileRunStore(tmp_path / "store")
    await store.save(sidecar())
    (tmp_path / "store/runs/.run-a.json.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "store/runs/bad name.json").write_bytes(b"{}")
    assert await store.run_ids() == ["run-a"]


@pytest.mark.anyio
async def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    kb = FileKnowledgeBase(tmp_path / "kb")
    store = FileRunStore(tmp_path / "store")
    for n in range(3):
        await kb.put("runs/run-a/stop", msgspec.structs.replace(stop_doc(), message=f"m{n}"))
        await store.save(sidecar(started_by=f"operator{n}"))
    await store.save_consuming(sidecar("run-b"), use())
    switch = FileKillSwitch(tmp_path / "switch" / "KILL")
    await switch.engage("test")
    await switch.release()
    assert temp_files(tmp_path) == []
    assert tree(tmp_path / "store") == [
        "consumed",
        "consumed/runs~run-a~gates~SG_1~approvals~alice.json",
        "runs",
        "runs/run-a.json",
        "runs/run-b.json",
    ]


@pytest.mark.anyio
async def test_failed_write_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    kb = FileKnowledgeBase(tmp_path)
    await kb.put("runs/run-a/stop", stop_doc())
    before = kb.path_of("runs/run-a/stop").read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", _raise_enospc)
        with pytest.raises(StorageFull, match="No space"):
            await kb.put("runs/run-a/stop", msgspec.structs.replace(stop_doc(), message="new"))
    assert kb.path_of("runs/run-a/stop").read_bytes() == before
    assert temp_files(tmp_path) == []


def test_short_writes_are_completed_in_new_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primitives write with ``os.write``, which may write less than asked; each
    makes the directory it writes into when, and only when, it is missing."""
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    data = b"0123456789" * 5
    write_atomic(tmp_path / "a" / "b" / "replaced.json", data)
    write_atomic(tmp_path / "a" / "b" / "replaced.json", data[::-1])
    assert create_exclusive(tmp_path / "c" / "exclusive.json", data)
    assert not create_exclusive(tmp_path / "c" / "exclusive.json", b"other")
    assert create_once(tmp_path / "d" / "e" / "once.json", data)
    assert not create_once(tmp_path / "d" / "e" / "once.json", b"other")
    assert (tmp_path / "a" / "b" / "replaced.json").read_bytes() == data[::-1]
    assert (tmp_path / "c" / "exclusive.json").read_bytes() == data
    assert (tmp_path / "d" / "e" / "once.json").read_bytes() == data
    assert temp_files(tmp_path) == []


def _raise_enospc(*_args: object) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.anyio
async def test_failed_journal_write_consumes_nothing(tmp_path: Path) -> None:
    store = FileRunStore(tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", _raise_enospc)
        with pytest.raises(StorageFull, match="No space"):
            await store.save_consuming(sidecar(), use())
    assert not store.journal_path(APPROVAL_ID).exists()
    assert await store.consumed_by(APPROVAL_ID) is None
    await store.save_consuming(sidecar(), use())
    assert await store.consumed_by(APPROVAL_ID) == "run-a"


@pytest.mark.anyio
async def test_consumption_survives_restart(tmp_path: Path) -> None:
    await FileRunStore(tmp_path).save_consuming(sidecar("run-a"), use())
    reopened = FileRunStore(tmp_path)
    assert await reopened.consumed_by(APPROVAL_ID) == "run-a"
    with pytest.raises(ApprovalConsumedAlready):
        await reopened.save_consuming(sidecar("run-b"), use())
    with pytest.raises(UnknownRun):
        await reopened.load("run-b")
    assert await reopened.load("run-a") == sidecar("run-a")


@pytest.mark.anyio
async def test_journal_record_contents(tmp_path: Path) -> None:
    store = FileRunStore(tmp_path)
    await store.save_consuming(sidecar("run-a"), use())
    record = msgspec.json.decode(store.journal_path(APPROVAL_ID).read_bytes())
    assert record == {
        "approval_kb_id": APPROVAL_ID,
        "run_id": "run-a",
        "consumed_at": "2025-03-01T12:05:00Z",
    }


@pytest.mark.anyio
async def test_long_approval_ids_get_distinct_short_journal_names(tmp_path: Path) -> None:
    head = "/".join(["s" * 60] * 7)
    first, second = head + "/" + "a" * 60, head + "/" + "b" * 60
    assert journal_name(first) != journal_name(second)
    assert len(journal_name(first)) < 255
    store = FileRunStore(tmp_path)
    await store.save_consuming(sidecar("run-a"), use(first))
    assert await store.consumed_by(second) is None
    await store.save_consuming(sidecar("run-b"), use(second))
    assert await store.consumed_by(first) == "run-a"
    assert await store.consumed_by(second) == "run-b"


@given(st.text(max_size=80) | st.from_regex(r"[A-Za-z0-9._/~-]{1,40}", fullmatch=True))
def test_kb_paths_stay_inside_the_root(kb_id: str) -> None:
    root = Path("/nonexistent/cutter-kb")
    kb = FileKnowledgeBase(root)
    try:
        path = kb.path_of(kb_id)
    except InvalidIdentifier:
        return
    relative = path.relative_to(root)
    assert ".." not in relative.parts
    assert "/".join(relative.parts)[: -len(".json")] == kb_id


@given(
    st.lists(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,70}", fullmatch=True),
        min_size=2,
        max_size=16,
        unique=True,
    ).map(lambda segs: "/".join(segs[:8]))
)
def test_journal_names_are_single_safe_components(kb_id: str) -> None:
    try:
        name = journal_name(kb_id)
    except InvalidIdentifier:
        return
    assert "/" not in name
    assert not name.startswith(".")
    assert len(name.encode()) <= 255


# -- files only: two processes race for one approval ------------------------------------

RACES = 150  # approvals the processes fight over, in the same order, so many collide


def race_approval(n: int) -> str:
    return f"runs/run-x/gates/SG_1/approvals/a{n:03d}"


RACER = """
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio

from cutter.errors import ApprovalConsumedAlready
from cutter.kbdocs import Decision
from cutter.mode import Mode
from cutter.sidecar import ApprovalUse, Sidecar
from cutter.states import RunState
from cutter.stores.files import FileRunStore

root, run_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = datetime.now(UTC)
store = FileRunStore(Path(root))
sidecar = Sidecar(run_id=run_id, doc_id="doc-1", mode=Mode.DRY_RUN, started_by="op",
                  created_at=now, updated_at=now, state=RunState.RUNNING)


async def race() -> None:
    for n in range(count):
        approval = f"runs/run-x/gates/SG_1/approvals/a{n:03d}"
        use = ApprovalUse(approval_kb_id=approval, approver="alice",
                          decision=Decision.APPROVE, peer=None, consumed_at=now)
        try:
            await store.save_consuming(sidecar, use)
        except ApprovalConsumedAlready:
            continue
        print(approval, flush=True)


print("ready", flush=True)
sys.stdin.readline()
anyio.run(race)
"""


def test_processes_racing_for_approvals(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), f"run-{n}", str(RACES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        for n in range(4)
    ]
    won: dict[str, list[str]] = {}
    try:
        for racer in racers:  # the barrier: all are set up and blocked on stdin
            assert racer.stdout is not None
            assert racer.stdout.readline() == "ready\n"
        for racer in racers:  # then released together
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        for n, racer in enumerate(racers):
            out, err = racer.communicate(timeout=120)
            assert racer.returncode == 0, err
            won[f"run-{n}"] = out.split()
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()

    claims = sorted(approval for approvals in won.values() for approval in approvals)
    assert claims == [race_approval(n) for n in range(RACES)]  # each won exactly once
    store = FileRunStore(tmp_path)
    for run_id, approvals in won.items():
        for approval in approvals:
            assert anyio.run(store.consumed_by, approval) == run_id
    assert anyio.run(store.run_ids) == sorted(r for r, approvals in won.items() if approvals)


# -- kill switch --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_kill_switch_engage_and_release(tmp_path: Path) -> None:
    switch = FileKillSwitch(tmp_path / "ops" / "KILL")
    assert not await switch.engaged()
    await switch.engage("incident 42\nsee pager")
    assert await switch.engaged()
    assert b"incident 42 see pager" in switch.path.read_bytes()
    await switch.engage("again")  # idempotent
    assert await switch.engaged()
    await switch.release()
    assert not await switch.engaged()
    assert not switch.path.exists()
    await switch.release()  # idempotent
    assert not await switch.engaged()


@pytest.mark.anyio
async def test_kill_switch_engaged_by_any_file(tmp_path: Path) -> None:
    path = tmp_path / "KILL"
    path.write_bytes(b"")  # an operator's `touch` is enough
    assert await FileKillSwitch(path).engaged()


@pytest.mark.anyio
async def test_kill_switch_fails_closed_on_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "KILL"
    path.mkdir()
    switch = FileKillSwitch(path)
    assert await switch.engaged()
    with pytest.raises(IsADirectoryError):  # and release cannot pretend it worked
        await switch.release()
    assert await switch.engaged()


@pytest.mark.anyio
async def test_kill_switch_fails_closed_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "ops").write_bytes(b"not a directory")
    assert await FileKillSwitch(tmp_path / "ops" / "KILL").engaged()


@pytest.mark.anyio
async def test_kill_switch_fails_closed_when_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ops" / "KILL"
    real_stat = os.stat

    def stat(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(target) == path:
            raise PermissionError(13, "Permission denied", str(target))
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    assert await FileKillSwitch(path).engaged()


@pytest.mark.anyio
@pytest.mark.may_skip
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through permissions")
async def test_kill_switch_fails_closed_on_a_locked_directory(tmp_path: Path) -> None:
    ops = tmp_path / "ops"
    ops.mkdir()
    ops.chmod(0)
    try:
        assert await FileKillSwitch(ops / "KILL").engaged()
    finally:
        ops.chmod(0o700)
