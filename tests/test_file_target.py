"""The durable file target stores: what only files can do wrong.

The port contracts run over these stores in ``tests/pg/test_adapters.py`` (backend
``files``). Here: restarts, a real ``kill -9``, corrupt and truncated files, hostile
ids, coroutines racing each other, and the temp files a crash leaves behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import pytest

from cutter.canonical import sha256_hex
from cutter.errors import CorruptRecord, InvalidIdentifier, StopVerifyFailed, UnknownDocument
from cutter.ledger import GENESIS_HASH, ChainBroken, CutEnvelope, LedgerEntry, verify_chain
from cutter.records import Backup, IURow, IUState, SourceVersion
from cutter.stores.file_target import FileIUStore, FileLedger, FileSources, derived_sv_id
from tests.pg._stores import article_source, cut, envelopes

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.anyio


# -- helpers ------------------------------------------------------------------------------


@dataclass
class Stores:
    root: Path
    sources: FileSources
    ius: FileIUStore
    ledger: FileLedger


def open_stores(root: Path) -> Stores:
    """The stores as the daemon lays them out under its state directory."""
    return Stores(
        root,
        FileSources(root / "sources"),
        FileIUStore(root / "ius"),
        FileLedger(root / "ledger"),
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


def envelope(n: int) -> CutEnvelope:
    return CutEnvelope(
        run_id=f"run-{n}",
        doc_id="doc-1",
        sv_id=f"sv-{n}",
        change_set_id=f"cs-{n}",
        manifest_digest=f"{n:064x}",
        iu_count=n,
    )


async def populate(stores: Stores) -> None:
    """Two documents, two versions of one, a cut enacted, a staged cut, a backup, a ledger."""
    old_data, new_data = article_source(4, tag=" v1"), article_source(5, tag=" v2")
    old = await stores.sources.publish("doc-1", old_data)
    await stores.ius.write_staged(cut(old, old_data, "cs-old", parts=3))
    await stores.ius.enact("cs-old")
    await stores.sources.mark_cut(old.sv_id, "cs-old")
    await stores.ius.save_backup(Backup(doc_id="doc-1", rows=tuple(await stores.ius.rows("doc-1"))))
    new = await stores.sources.publish("doc-1", new_data)
    await stores.ius.write_staged(cut(new, new_data, "cs-new", parts=4))
    other_data = article_source(3, tag=" other")
    other = await stores.sources.publish("doc-2", other_data)
    await stores.ius.write_staged(cut(other, other_data, "cs-other"))
    for e in envelopes():
        await stores.ledger.append(e)


@dataclass(frozen=True)
class View:
    """Everything a reader can see of the populated stores."""

    current: dict[str, SourceVersion]
    contents: dict[str, bytes]
    cut_by: dict[str, str | None]
    rows: dict[str, list[IURow]]
    change_sets: dict[str, list[IURow]]
    backups: dict[str, Backup]
    entries: list[LedgerEntry]
    head: str


async def view(stores: Stores, backup_ids: list[str]) -> View:
    current = {d: await stores.sources.current(d) for d in ("doc-1", "doc-2")}
    versions = [r.sv_id for d in ("doc-1", "doc-2") for r in await stores.ius.rows(d)] + [
        v.sv_id for v in current.values()
    ]
    return View(
        current=current,
        contents={sv: await stores.sources.content(sv) for sv in sorted(set(versions))},
        cut_by={sv: await stores.sources.cut_by(sv) for sv in sorted(set(versions))},
        rows={d: await stores.ius.rows(d) for d in ("doc-1", "doc-2")},
        change_sets={
            cs: await stores.ius.change_set(cs) for cs in ("cs-old", "cs-new", "cs-other")
        },
        backups={b: await stores.ius.load_backup(b) for b in backup_ids},
        entries=list(await stores.ledger.entries()),
        head=await stores.ledger.verify(),
    )


async def backup_ids(stores: Stores) -> list[str]:
    return sorted(p.stem for p in (stores.ius.root / "backups").glob("*.json"))


# -- restarts -----------------------------------------------------------------------------


async def test_new_instances_on_the_same_root_read_the_same_state(tmp_path: Path) -> None:
    first = open_stores(tmp_path)
    await populate(first)
    ids = await backup_ids(first)
    assert len(ids) == 1
    before = await view(first, ids)
    assert before.rows["doc-1"]
    assert before.rows["doc-2"]
    assert before.cut_by[before.change_sets["cs-old"][0].sv_id] == "cs-old"
    assert len(before.entries) == 3

    again = open_stores(tmp_path)
    assert await view(again, ids) == before
    assert verify_chain(await again.ledger.entries()) == before.head

    # The reopened stores carry on where the first left off.
    assert await again.ius.enact("cs-new") == 4
    assert await again.ledger.append(envelopes()[0]) == before.entries[0]
    fourth = await again.ledger.append(envelope(4))
    assert fourth.seq == 3
    assert fourth.prev_hash == before.head
    assert await open_stores(tmp_path).ius.change_set("cs-new") == await again.ius.change_set(
        "cs-new"
    )
    assert await open_stores(tmp_path).ledger.verify() == fourth.entry_hash


async def test_the_layout_is_as_documented(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    data = b"exact \x00 bytes \xff"
    version = await stores.sources.publish("doc-1", data)
    assert version.sv_id == derived_sv_id("doc-1", data)
    assert (tmp_path / "sources/versions" / f"{version.sv_id}.bin").read_bytes() == data
    await stores.sources.mark_cut(version.sv_id, "cs-a")
    await stores.ius.write_staged(cut(version, data, "cs-a"))
    await stores.ledger.append(envelopes()[0])
    head = msgspec.json.decode((tmp_path / "ius/HEAD.json").read_bytes())
    assert head["change_sets"] == {"cs-a": ["doc-1"]}
    assert sorted(snapshot(tmp_path)) == sorted(
        [
            f"sources/versions/{version.sv_id}.bin",
            f"sources/versions/{version.sv_id}.json",
            f"sources/cuts/{version.sv_id}.json",
            "sources/current/doc-1.json",
            "ius/HEAD.json",
            f"ius/docs/doc-1/{head['docs']['doc-1']}.json",
            "ledger/ledger.jsonl",
        ]
    )
    line = msgspec.json.decode((tmp_path / "ledger/ledger.jsonl").read_bytes())
    assert line["seq"] == 0


async def test_an_old_snapshot_is_removed_once_head_names_the_new_one(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    data = article_source(4)
    version = await stores.sources.publish("doc-1", data)
    await stores.ius.write_staged(cut(version, data, "cs-a"))
    await stores.ius.enact("cs-a")
    await stores.ius.restore(Backup(doc_id="doc-1", rows=()))
    assert snapshot(tmp_path / "ius/docs") == {}
    assert msgspec.json.decode((tmp_path / "ius/HEAD.json").read_bytes()) == {
        "docs": {},
        "change_sets": {},
    }


def test_a_kill_9_mid_write_leaves_a_readable_store(tmp_path: Path) -> None:
    """A child writes in a loop and says which writes returned; it is killed (SIGKILL)
    at some instruction of a later one. Everything acknowledged is there, the rest
    reads whole or not at all, and the stores carry on."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    assert child.stdout is not None
    acknowledged = -1
    try:
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= 25:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert acknowledged >= 25

    async def check() -> None:
        stores = open_stores(tmp_path)
        entries = await stores.ledger.entries()
        assert verify_chain(entries) == await stores.ledger.verify()
        runs = [e.envelope.run_id for e in entries]
        assert runs[: acknowledged + 1] == [f"run-{i}" for i in range(acknowledged + 1)]
        for i in range(acknowledged + 1):
            rows = await stores.ius.change_set(f"cs-{i}")
            assert [r.sv_id for r in rows] == [f"sv-{i}"] * 2
            assert {r.state for r in rows} <= {IUState.ACTIVE, IUState.SUPERSEDED}  # enacted
        for doc_id in ("doc-0", "doc-1", "doc-2"):
            current = await stores.sources.current(doc_id)
            assert (await stores.sources.content(current.sv_id)).startswith(b"version ")
            rows = await stores.ius.rows(doc_id)
            assert len({r.change_set_id for r in rows if r.state is IUState.ACTIVE}) == 1
        # The stores carry on after the crash.
        last = await stores.ledger.append(envelope(10_000))
        assert await stores.ledger.verify() == last.entry_hash

    anyio.run(check)


KILLED_WRITER = """
import sys
from pathlib import Path

import anyio

from cutter.ledger import CutEnvelope
from cutter.records import IURow, IUState
from cutter.stores.file_target import FileIUStore, FileLedger, FileSources

root = Path(sys.argv[1])
sources = FileSources(root / "sources")
ius = FileIUStore(root / "ius")
ledger = FileLedger(root / "ledger")


async def main() -> None:
    for i in range(100_000):
        doc_id = f"doc-{i % 3}"
        await sources.publish(doc_id, f"version {i}".encode() * 50)
        rows = [
            IURow(iu_id=f"iu-{i}-{n}", doc_id=doc_id, sv_id=f"sv-{i}", ordinal=n, label="x",
                  kind="unit", start=n, end=n + 1, region_sha=f"{n:064x}", body=b"x" * 300,
                  state=IUState.STAGED, change_set_id=f"cs-{i}")
            for n in range(2)
        ]
        await ius.write_staged(rows)
        await ius.enact(f"cs-{i}")
        await ledger.append(CutEnvelope(run_id=f"run-{i}", doc_id=doc_id, sv_id=f"sv-{i}",
                                        change_set_id=f"cs-{i}", manifest_digest="0" * 64,
                                        iu_count=2))
        print(i, flush=True)


anyio.run(main)
"""


# -- corrupt and truncated files ----------------------------------------------------------


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage(_data: bytes) -> bytes:
    return b"\xde\xad\xbe\xef"


def _empty(_data: bytes) -> bytes:
    return b""


def _wrong_shape(_data: bytes) -> bytes:
    return b"[1, 2, 3]"


DAMAGE: list[tuple[Callable[[bytes], bytes], str]] = [
    (_truncate, "truncated"),
    (_garbage, "garbage"),
    (_empty, "empty"),
    (_wrong_shape, "wrong-shape"),
]


@dataclass(frozen=True)
class Victim:
    """A file to damage, and the reads that must then report it."""

    name: str
    path: Callable[[Stores], Path]
    reads: Callable[[Stores], list[Callable[[], Awaitable[object]]]]


def _only(root: Path, pattern: str) -> Path:
    [found] = sorted(root.glob(pattern))
    return found


OTHER_SV = derived_sv_id("doc-2", article_source(3, tag=" other"))


def _cut_mark(s: Stores) -> Path:
    return _only(s.sources.root / "cuts", "*.json")


def _backup_file(s: Stores) -> Path:
    return _only(s.ius.root / "backups", "*.json")


VICTIMS = [
    Victim(
        "current pointer",
        lambda s: s.sources.current_path("doc-1"),
        lambda s: [lambda: s.sources.current("doc-1")],
    ),
    Victim(
        "version record",
        lambda s: s.sources.version_path(OTHER_SV),
        lambda s: [
            lambda: s.sources.content(OTHER_SV),
            lambda: s.sources.publish("doc-2", article_source(3, tag=" other")),
        ],
    ),
    Victim(
        "version bytes",
        lambda s: s.sources.bytes_path(OTHER_SV),
        lambda s: [
            lambda: s.sources.content(OTHER_SV),
            lambda: s.sources.publish("doc-2", article_source(3, tag=" other")),
        ],
    ),
    Victim(
        "cut mark",
        _cut_mark,
        lambda s: [lambda: s.sources.cut_by(_cut_mark(s).stem)],
    ),
    Victim(
        "IU HEAD",
        lambda s: s.ius.head_path,
        lambda s: [
            lambda: s.ius.rows("doc-1"),
            lambda: s.ius.change_set("cs-other"),
            lambda: s.ius.write_staged(_fresh_rows()),
            lambda: s.ius.enact("cs-new"),
            lambda: s.ius.restore(Backup(doc_id="doc-2", rows=())),
        ],
    ),
    Victim(
        "doc-1 snapshot",
        lambda s: _only(s.ius.root / "docs/doc-1", "*.json"),
        lambda s: [
            lambda: s.ius.rows("doc-1"),
            lambda: s.ius.change_set("cs-new"),
            lambda: s.ius.write_staged(_fresh_rows()),
            lambda: s.ius.enact("cs-new"),
            lambda: s.ius.restore(Backup(doc_id="doc-1", rows=())),
        ],
    ),
    Victim(
        "backup",
        _backup_file,
        lambda s: [lambda: s.ius.load_backup(_backup_file(s).stem)],
    ),
    Victim(
        "ledger",
        lambda s: s.ledger.path,
        lambda s: [
            lambda: s.ledger.entries(),
            lambda: s.ledger.verify(),
            lambda: s.ledger.append(envelope(9)),
        ],
    ),
]


def version_of(doc_id: str, sv_id: str) -> SourceVersion:
    return SourceVersion(doc_id=doc_id, sd_id=f"sd-{doc_id}", sv_id=sv_id, sha256="0", size=0)


def _fresh_rows() -> list[IURow]:
    return cut(version_of("doc-1", "sv-fresh"), article_source(3, tag=" fresh"), "cs-fresh")


CASES = [
    pytest.param(victim, damage, id=f"{victim.name}-{damage_id}")
    for victim in VICTIMS
    for damage, damage_id in DAMAGE
    # An empty ledger file is an empty ledger (as a fresh one is), not a damaged one.
    if not (victim.name == "ledger" and damage_id == "empty")
]


@pytest.mark.parametrize(("victim", "damage"), CASES)
async def test_a_damaged_file_is_corrupt_record_naming_it_and_is_left_alone(
    tmp_path: Path, victim: Victim, damage: Callable[[bytes], bytes]
) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    path = victim.path(stores)
    path.write_bytes(damage(path.read_bytes()))
    before = snapshot(tmp_path)
    for read in victim.reads(stores):
        with pytest.raises(CorruptRecord) as caught:
            await read()
        assert str(path) in caught.value.location
        assert str(path) in str(caught.value)
        assert caught.value.code == "E_CORRUPT_RECORD"
    assert snapshot(tmp_path) == before  # reported, never repaired, nothing else written
    assert temp_files(tmp_path) == []


async def test_what_the_damage_does_not_touch_still_reads(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    doc_2 = await stores.ius.rows("doc-2")
    snapshot_path = _only(stores.ius.root / "docs/doc-1", "*.json")
    snapshot_path.write_bytes(_truncate(snapshot_path.read_bytes()))
    with pytest.raises(CorruptRecord):
        await stores.ius.rows("doc-1")
    assert await stores.ius.rows("doc-2") == doc_2
    assert await stores.ius.change_set("cs-other") == doc_2
    assert await stores.ius.enact("cs-other") == 3  # another document's cut still lands


async def test_a_snapshot_changed_but_still_decodable_is_corrupt(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    path = _only(stores.ius.root / "docs/doc-2", "*.json")
    path.write_bytes(path.read_bytes().replace(b'"staged"', b'"active"'))
    with pytest.raises(CorruptRecord, match="sha256"):
        await stores.ius.rows("doc-2")


async def test_a_ledger_line_changed_but_still_decodable_breaks_the_chain(
    tmp_path: Path,
) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    path = stores.ledger.path
    path.write_bytes(path.read_bytes().replace(b'"iu_count":12', b'"iu_count":13'))
    before = path.read_bytes()
    with pytest.raises(ChainBroken) as caught:
        await stores.ledger.verify()
    assert caught.value.seq == 0
    assert path.read_bytes() == before


async def test_verify_checks_the_stored_bytes_are_canonical(tmp_path: Path) -> None:
    """An entry whose hashes are right for its stored bytes, which are not canonical:
    ``entries`` decodes it, ``verify`` does not pass it."""
    ledger = FileLedger(tmp_path / "ledger")
    body = b'{"kind":"cut", "run_id":"run-a","doc_id":"doc-1","sv_id":"sv-1",'
    body += b'"change_set_id":"cs-a","manifest_digest":"' + b"0" * 64 + b'","iu_count":1}'
    entry_hash = sha256_hex(bytes.fromhex(GENESIS_HASH) + body)
    line = (
        b'{"seq":0,"prev_hash":"'
        + GENESIS_HASH.encode()
        + b'","entry_hash":"'
        + entry_hash.encode()
        + b'","envelope_sha":"'
        + sha256_hex(body).encode()
        + b'","envelope":'
        + body
        + b"}\n"
    )
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_bytes(line)
    [entry] = await ledger.entries()
    assert entry.entry_hash == entry_hash
    with pytest.raises(ChainBroken, match="canonical"):
        await ledger.verify()
    assert ledger.path.read_bytes() == line


async def test_a_version_whose_bytes_changed_is_corrupt(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    version = await stores.sources.publish("doc-1", b"the original bytes")
    stores.sources.bytes_path(version.sv_id).write_bytes(b"the changed bytes!")
    with pytest.raises(CorruptRecord, match="sha256"):
        await stores.sources.content(version.sv_id)


# -- hostile ids --------------------------------------------------------------------------

HOSTILE = [
    "../escape",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "..",
    ".",
    ".hidden",
    "",
    "nul\x00byte",
    "sp ace",
    "x" * 200,
    "back\\slash",
    "-leading-dash",
]


def _hostile_calls(stores: Stores, bad: str) -> list[Callable[[], Awaitable[object]]]:
    data = article_source(3)
    good = cut(version_of("doc-1", "sv-1"), data, "cs-a")
    smuggled = msgspec.structs.replace(good[0], doc_id=bad)
    return [
        lambda: stores.sources.publish(bad, data),
        lambda: stores.sources.publish("doc-1", data, sv_id=bad),
        lambda: stores.sources.current(bad),
        lambda: stores.sources.content(bad),
        lambda: stores.sources.mark_cut(bad, "cs-a"),
        lambda: stores.sources.cut_by(bad),
        lambda: stores.ius.rows(bad),
        lambda: stores.ius.write_staged([*good, smuggled]),
        lambda: stores.ius.load_backup(bad),
        lambda: stores.ius.restore(Backup(doc_id=bad, rows=())),
        lambda: stores.ius.restore(Backup(doc_id="doc-1", rows=(smuggled,))),
    ]


@pytest.mark.parametrize("bad", HOSTILE)
async def test_hostile_ids_never_build_a_path(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "state"
    stores = open_stores(root)
    for call in _hostile_calls(stores, bad):
        with pytest.raises(InvalidIdentifier):
            await call()
    assert not root.exists()  # not even a directory
    assert snapshot(tmp_path) == {}


async def test_an_sv_id_naming_another_version_is_refused(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    await stores.sources.publish("doc-1", b"one", sv_id="sv-fixed")
    before = snapshot(tmp_path)
    with pytest.raises(InvalidIdentifier, match="sv-fixed"):
        await stores.sources.publish("doc-2", b"two", sv_id="sv-fixed")
    assert snapshot(tmp_path) == before
    assert await stores.sources.content("sv-fixed") == b"one"
    with pytest.raises(UnknownDocument):
        await stores.sources.current("doc-2")


# -- coroutines racing --------------------------------------------------------------------


async def test_concurrent_batches_of_different_documents_lose_nothing(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    expected: dict[str, list[IURow]] = {}
    for d in range(8):
        data = article_source(6, tag=f" doc {d}")
        version = await stores.sources.publish(f"doc-{d}", data)
        expected[f"doc-{d}"] = cut(version, data, f"cs-{d}", parts=5)
    added: list[int] = []

    async def write(rows: list[IURow]) -> None:
        added.append(await stores.ius.write_staged(rows))

    async with anyio.create_task_group() as tg:
        for rows in expected.values():
            tg.start_soon(write, rows[:3])
            tg.start_soon(write, rows[3:])
            tg.start_soon(write, rows)  # overlaps both: adds what they have not
    assert sum(added) == 5 * len(expected)
    for doc_id, rows in expected.items():
        assert await stores.ius.rows(doc_id) == rows
    reopened = open_stores(tmp_path)
    for d, rows in enumerate(expected.values()):
        assert await reopened.ius.change_set(f"cs-{d}") == rows
    assert temp_files(tmp_path) == []


async def test_concurrent_conflicting_batches_have_one_winner(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    data = article_source(6)
    version = await stores.sources.publish("doc-1", data)
    outcomes: dict[str, str] = {}

    async def write(change_set_id: str) -> None:
        try:
            await stores.ius.write_staged(cut(version, data, change_set_id))
        except StopVerifyFailed:
            outcomes[change_set_id] = "refused"
        else:
            outcomes[change_set_id] = "won"

    async with anyio.create_task_group() as tg:
        for n in range(6):
            tg.start_soon(write, f"cs-{n}")
    [winner] = [cs for cs, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 6
    assert {r.change_set_id for r in await stores.ius.rows("doc-1")} == {winner}


async def test_concurrent_enacts_and_batches_lose_nothing(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    for d in range(6):
        data = article_source(4, tag=f" {d}")
        version = await stores.sources.publish(f"doc-{d}", data)
        await stores.ius.write_staged(cut(version, data, f"cs-{d}"))

    async def enact_then_write(d: int) -> None:
        assert await stores.ius.enact(f"cs-{d}") == 3
        data = article_source(5, tag=f" {d} next")
        version = await stores.sources.publish(f"doc-{d}", data)
        assert await stores.ius.write_staged(cut(version, data, f"cs-{d}-next")) == 3

    async with anyio.create_task_group() as tg:
        for d in range(6):
            tg.start_soon(enact_then_write, d)
    for d in range(6):
        states = [r.state for r in await stores.ius.change_set(f"cs-{d}")]
        assert states == [IUState.ACTIVE] * 3
        assert len(await stores.ius.change_set(f"cs-{d}-next")) == 3
        assert len(await stores.ius.rows(f"doc-{d}")) == 6


async def test_concurrent_ledger_appends_lose_nothing_and_verify(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    appended: list[int] = []

    async def append(n: int) -> None:
        appended.append((await stores.ledger.append(envelope(n))).seq)

    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(append, n)
            tg.start_soon(append, n)  # the same envelope twice: one entry
    entries = await stores.ledger.entries()
    assert sorted(e.envelope.run_id for e in entries) == sorted(f"run-{n}" for n in range(40))
    assert [e.seq for e in entries] == list(range(40))
    assert sorted(set(appended)) == list(range(40))
    assert len(appended) == 80
    assert await stores.ledger.verify() == verify_chain(entries) == entries[-1].entry_hash
    assert await open_stores(tmp_path).ledger.verify() == entries[-1].entry_hash
    assert temp_files(tmp_path) == []


async def test_concurrent_mark_cut_has_one_winner(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    version = await stores.sources.publish("doc-1", b"bytes")
    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(stores.sources.mark_cut, version.sv_id, f"cs-{n}")
    winner = await stores.sources.cut_by(version.sv_id)
    assert winner is not None
    assert winner.startswith("cs-")
    assert await open_stores(tmp_path).sources.cut_by(version.sv_id) == winner


# -- what a crash leaves behind -----------------------------------------------------------


async def test_stray_temp_files_change_nothing_that_is_read(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    ids = await backup_ids(stores)
    before = await view(stores, ids)
    doc_1_dir = stores.ius.root / "docs/doc-1"
    sv_id = before.current["doc-1"].sv_id
    strays = [
        stores.ius.root / ".HEAD.json.k1l2m3.tmp",
        doc_1_dir / f".{'0' * 64}.json.k1l2m3.tmp",
        stores.ius.root / "backups" / f".{ids[0]}.json.k1l2m3.tmp",
        stores.ledger.root / f".{stores.ledger.path.name}.k1l2m3.tmp",
        stores.sources.root / "current/.doc-1.json.k1l2m3.tmp",
        stores.sources.root / f"versions/.{sv_id}.bin.k1l2m3.tmp",
        stores.sources.root / f"versions/.{sv_id}.json.k1l2m3.tmp",
    ]
    for stray in strays:
        stray.write_bytes(b'{"half": "writ')
    assert await view(open_stores(tmp_path), ids) == before
    assert await view(stores, ids) == before
    # and the stores carry on writing past them
    assert await stores.ius.enact("cs-new") == 4
    entry = await stores.ledger.append(envelope(7))
    assert await stores.ledger.verify() == entry.entry_hash
    assert sorted(temp_files(tmp_path)) == sorted(str(p.relative_to(tmp_path)) for p in strays)


async def test_a_crash_before_head_moves_leaves_the_old_rows(tmp_path: Path) -> None:
    """A snapshot written but never named by HEAD (the crash came before the rename)
    is not read, and the next commit of the same rows reuses or replaces it."""
    stores = open_stores(tmp_path)
    await populate(stores)
    before = await stores.ius.rows("doc-1")
    head_before = stores.ius.head_path.read_bytes()
    orphan = stores.ius.root / "docs/doc-1" / ("f" * 64 + ".json")
    orphan.write_bytes(b'{"doc_id":"doc-1","rows":[]}')
    assert await stores.ius.rows("doc-1") == before
    assert await stores.ius.enact("cs-new") == 4
    assert stores.ius.head_path.read_bytes() != head_before
    assert {r.state for r in await open_stores(tmp_path).ius.change_set("cs-new")} == {
        IUState.ACTIVE
    }


async def test_a_crash_mid_publish_is_finished_by_publishing_again(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    old = await stores.sources.publish("doc-1", b"old bytes")
    data = b"new bytes"
    sv_id = derived_sv_id("doc-1", data)
    # Crashed after the bytes file, before the version record: not a version yet.
    stores.sources.bytes_path(sv_id).write_bytes(b"torn")
    with pytest.raises(CorruptRecord, match="no such version"):
        await stores.sources.content(sv_id)
    await stores.sources.mark_cut(sv_id, "cs-x")
    assert await stores.sources.cut_by(sv_id) is None
    assert await stores.sources.current("doc-1") == old
    new = await stores.sources.publish("doc-1", data)
    assert await stores.sources.content(sv_id) == data
    assert await stores.sources.current("doc-1") == new
    # Crashed after the version record, before the pointer moved: publishing again
    # moves it.
    stores.sources.current_path("doc-1").write_bytes(
        stores.sources.version_path(old.sv_id).read_bytes()
    )
    assert await stores.sources.current("doc-1") == old
    assert await stores.sources.publish("doc-1", data) == new
    assert await stores.sources.current("doc-1") == new


async def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    await populate(stores)  # replays: nothing new
    data = article_source(6)
    version = await stores.sources.publish("doc-1", data)
    with pytest.raises(StopVerifyFailed):
        await stores.ius.write_staged(cut(version, data, "cs-a") + cut(version, data, "cs-b"))
    await stores.ius.enact("cs-new")
    await stores.ius.restore(await stores.ius.load_backup((await backup_ids(stores))[0]))
    await stores.ius.save_backup(Backup(doc_id="doc-1", rows=()))
    assert temp_files(tmp_path) == []
    assert [name for name in snapshot(tmp_path) if "/." in f"/{name}"] == []


async def test_a_refused_batch_writes_nothing(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    await populate(stores)
    before = snapshot(tmp_path)
    data = article_source(6, tag=" new doc")
    version = await stores.sources.publish("doc-9", data)
    after_publish = snapshot(tmp_path)
    held = await stores.ius.rows("doc-1")
    clash = msgspec.structs.replace(held[0], change_set_id="cs-thief")
    with pytest.raises(StopVerifyFailed, match=held[0].change_set_id):
        await stores.ius.write_staged([*cut(version, data, "cs-9"), clash])
    assert snapshot(tmp_path) == after_publish
    assert set(after_publish) - set(before) == {
        f"sources/versions/{version.sv_id}.bin",
        f"sources/versions/{version.sv_id}.json",
        "sources/current/doc-9.json",
    }


async def test_a_batch_repeating_a_key_with_another_region_is_refused(tmp_path: Path) -> None:
    stores = open_stores(tmp_path)
    data = article_source(6)
    version = await stores.sources.publish("doc-1", data)
    rows = cut(version, data, "cs-a")
    twin = msgspec.structs.replace(rows[0], region_sha="0" * 64)
    with pytest.raises(StopVerifyFailed):
        await stores.ius.write_staged([*rows, twin])
    assert await stores.ius.rows("doc-1") == []
    assert await stores.ius.write_staged([*rows, rows[0]]) == 3  # an exact repeat is one row
