"""Contract tests of every adapter operation, over the in-memory fakes, the embedded
SQLite stores and PostgreSQL.

Each contract test runs three times (``memory``, ``sqlite`` and ``pg``) with the same
assertions, so neither the fake nor the embedded database can drift from what
PostgreSQL does. The PostgreSQL side runs every statement
as ``cutter_writer`` on a fresh migrated database. What only PostgreSQL has (the grant
probe, the kill switch, process-wide document locks) is tested on its own below.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
import asyncpg
import msgspec
import pytest

from cutter.core.canonical import canonical
from cutter.core.codec import encode_sidecar
from cutter.core.errors import (
    ApprovalConsumedAlready,
    CorruptRecord,
    DocumentBusy,
    InvalidIdentifier,
    RunChanged,
    StopVerifyFailed,
    UnknownDocument,
    UnknownRun,
)
from cutter.core.ids import derived_sv_id
from cutter.core.kbdocs import PhaseDoc
from cutter.core.ledger import GENESIS_HASH, chain_hash, next_entry, verify_chain
from cutter.core.notices import notices_for, reminder_for
from cutter.core.outbox import attempted, backoff
from cutter.core.ports import LedgerReader, SourcePublisher, Target
from cutter.core.quarantine import UnreadableRun
from cutter.core.records import REQUIRED_GRANTS, Backup, IURow, IUState
from cutter.core.route import Pin
from cutter.core.run_pages import RunFilter
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.stores.memory.target import StaticGrantProbe
from cutter.stores.pg.connect import StoreUnavailable, create_pool
from cutter.stores.pg.locks import PgDocumentLocks
from cutter.stores.pg.records import PgKillSwitch
from cutter.stores.pg.target import PgGrantProbe, PgLedger
from cutter.stores.sqlite.target import SqliteIUStore, SqliteLedger
from cutter.walk.locks import InProcessDocumentLocks
from cutter.walk.sandbox import sandbox
from tests._harness import paused_sidecar
from tests._revision import next_revision
from tests.pg._stores import (
    BACKENDS,
    T0,
    TARGET_BACKENDS,
    WRITER,
    Backend,
    RecordsUnderTest,
    TargetUnderTest,
    admin_execute,
    admin_fetch,
    admin_fetchval,
    approval_doc,
    approval_use,
    article_source,
    cut,
    envelopes,
    nth_envelope,
    open_records,
    open_target,
    phase_doc,
    populate,
    view,
)
from tests.pg.conftest import PgDatabase

pytestmark = pytest.mark.anyio


def sidecar(run_id: str = "run-a", *, started_by: str = "operator", **changes: Any) -> Sidecar:
    """A paused run of a document of its own: two open runs of one document are never
    both recorded (``tests/pg/test_open_runs.py``)."""
    paused = paused_sidecar(run_id, started_by=started_by)
    return msgspec.structs.replace(paused, **{"doc_id": f"doc-of-{run_id}", **changes})


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "pg":
        return Backend("pg", request.getfixturevalue("pg_db"))
    return Backend(request.param)


@pytest.fixture(params=TARGET_BACKENDS)
def target_backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "pg":
        return Backend("pg", request.getfixturevalue("pg_db"))
    return Backend(request.param)


@pytest.fixture
async def target(target_backend: Backend) -> AsyncIterator[TargetUnderTest]:
    async with open_target(target_backend) as opened:
        yield opened


@pytest.fixture
async def records(backend: Backend) -> AsyncIterator[RecordsUnderTest]:
    async with open_records(backend) as opened:
        yield opened


# == SourceRepository =================================================================


async def test_current_is_the_published_version(target: TargetUnderTest) -> None:
    data = article_source()
    published = await target.publish("doc-1", data)
    current = await target.sources.current("doc-1")
    assert current == published
    assert (current.doc_id, current.sd_id) == ("doc-1", "sd-doc-1")
    assert current.sha256 == hashlib.sha256(data).hexdigest()
    assert current.size == len(data)


async def test_every_sources_store_publishes_through_the_one_port(
    target: TargetUnderTest,
) -> None:
    """One ingest port, one id rule: the same document and bytes are one version with
    the derived id on every store; a named ``sv_id`` is kept."""
    assert isinstance(target.sources, SourcePublisher)
    data = article_source()
    first = await target.publisher.publish("doc-1", data)
    again = await target.publisher.publish("doc-1", data)
    assert first == again
    assert first.sv_id == derived_sv_id("doc-1", hashlib.sha256(data).hexdigest())
    named = await target.publisher.publish("doc-2", data, sv_id="sv-named", sd_id="sd-x")
    assert (named.sv_id, named.sd_id) == ("sv-named", "sd-x")
    assert await target.sources.current("doc-2") == named


async def test_every_sources_store_refuses_alike(target: TargetUnderTest) -> None:
    """A bad document id, and an ``sv_id`` that names another version already, are
    ``InvalidIdentifier`` on every store, and change nothing."""
    kept = await target.publisher.publish("doc-1", b"one")
    for bad_call in (
        lambda: target.publisher.publish("../doc", b"two"),
        lambda: target.publisher.publish("doc-1", b"two", sv_id=kept.sv_id),
        lambda: target.publisher.publish("doc-2", b"two", sv_id=kept.sv_id),
        lambda: target.publisher.publish("doc-1", b"two", sv_id="bad id"),
    ):
        with pytest.raises(InvalidIdentifier) as caught:
            await bad_call()
        assert caught.value.code == "E_INVALID_ID"
    assert await target.sources.current("doc-1") == kept
    assert await target.sources.content(kept.sv_id) == b"one"
    with pytest.raises(UnknownDocument):  # refused under doc-2 too: nothing recorded
        await target.sources.current("doc-2")


async def test_current_of_an_unknown_document_is_unknown_document(
    target: TargetUnderTest,
) -> None:
    await target.publish("doc-1", article_source())
    with pytest.raises(UnknownDocument) as caught:
        await target.sources.current("doc-2")
    assert caught.value.doc_id == "doc-2"
    assert caught.value.code == "E_UNKNOWN_DOCUMENT"


async def test_content_is_the_exact_bytes(target: TargetUnderTest) -> None:
    data = bytes(range(256)) * 3 + b"\x00\xff\xfe trailing \x00"
    version = await target.publish("doc-1", data)
    assert await target.sources.content(version.sv_id) == data


async def test_a_new_version_becomes_current_and_the_old_one_stays_readable(
    target: TargetUnderTest,
) -> None:
    old_data, new_data = article_source(tag=" v1"), article_source(tag=" v2")
    old = await target.publish("doc-1", old_data)
    new = await target.publish("doc-1", new_data)
    assert new.sv_id != old.sv_id
    assert new.sha256 != old.sha256
    assert await target.sources.current("doc-1") == new
    assert await target.sources.content(old.sv_id) == old_data
    assert await target.sources.content(new.sv_id) == new_data


async def test_publishing_one_document_leaves_another_alone(target: TargetUnderTest) -> None:
    one = await target.publish("doc-1", article_source(tag=" one"))
    await target.publish("doc-2", article_source(tag=" two"))
    assert await target.sources.current("doc-1") == one


async def test_mark_cut_is_idempotent_and_the_first_writer_wins(target: TargetUnderTest) -> None:
    version = await target.publish("doc-1", article_source(tag=" v1"))
    other = await target.publish("doc-1", article_source(tag=" v2"))
    assert await target.sources.cut_by(version.sv_id) is None
    await target.sources.mark_cut(version.sv_id, "cs-first")
    assert await target.sources.cut_by(version.sv_id) == "cs-first"
    await target.sources.mark_cut(version.sv_id, "cs-first")
    assert await target.sources.cut_by(version.sv_id) == "cs-first"
    await target.sources.mark_cut(version.sv_id, "cs-second")
    assert await target.sources.cut_by(version.sv_id) == "cs-first"
    assert await target.sources.cut_by(other.sv_id) is None


async def test_unknown_versions_read_as_corrupt_and_mark_cut_ignores_them(
    target: TargetUnderTest,
) -> None:
    with pytest.raises(CorruptRecord, match="sv-nobody"):
        await target.sources.content("sv-nobody")
    await target.sources.mark_cut("sv-nobody", "cs-x")
    assert await target.sources.cut_by("sv-nobody") is None


async def test_set_cut_overwrites_and_clears_one_version_only(target: TargetUnderTest) -> None:
    version = await target.publish("doc-1", article_source(tag=" v1"))
    other = await target.publish("doc-1", article_source(tag=" v2"))
    await target.sources.mark_cut(version.sv_id, "cs-first")
    await target.sources.mark_cut(other.sv_id, "cs-other")
    await target.sources.set_cut(version.sv_id, "cs-restored")
    assert await target.sources.cut_by(version.sv_id) == "cs-restored"
    await target.sources.set_cut(version.sv_id, None)
    assert await target.sources.cut_by(version.sv_id) is None
    await target.sources.mark_cut(version.sv_id, "cs-again")  # cleared: the next cut marks it
    assert await target.sources.cut_by(version.sv_id) == "cs-again"
    assert await target.sources.cut_by(other.sv_id) == "cs-other"


async def test_backups_lists_a_documents_backups_oldest_first_counted(
    target: TargetUnderTest,
) -> None:
    assert await target.ius.backups("doc-1") == []
    empty = Backup(doc_id="doc-1", rows=())
    await target.ius.save_backup(empty)
    data = article_source(4)
    await target.ius.write_staged(cut(await target.publish("doc-1", data), data, "cs-a", parts=3))
    await target.ius.enact("cs-a")
    cut_rows = Backup(doc_id="doc-1", rows=tuple(await target.ius.rows("doc-1")))
    await target.ius.save_backup(cut_rows)
    await target.ius.save_backup(empty)  # saving again lists it once, where it was
    other = Backup(doc_id="doc-2", rows=())
    await target.ius.save_backup(Backup(doc_id="doc-2", rows=()))

    listed = await target.ius.backups("doc-1")
    assert sorted((b.backup_id, b.rows, b.active) for b in listed) == sorted(
        [(empty.backup_id, 0, 0), (cut_rows.backup_id, 3, 3)]
    )
    # Oldest first, then by id: two saves in one clock tick (SQLite keeps milliseconds)
    # are ordered by id.
    assert listed == sorted(listed, key=lambda b: (b.saved_at, b.backup_id))
    assert {b.doc_id for b in listed} == {"doc-1"}
    assert [b.backup_id for b in await target.ius.backups("doc-2")] == [other.backup_id]


async def test_an_unknown_backup_reads_as_corrupt(target: TargetUnderTest) -> None:
    with pytest.raises(CorruptRecord, match="bk-nobody"):
        await target.ius.load_backup("bk-nobody")


# == IUStore ==========================================================================


async def test_write_staged_returns_the_rows_added_and_a_replay_adds_none(
    target: TargetUnderTest,
) -> None:
    data = article_source(6)
    version = await target.publish("doc-1", data)
    rows = cut(version, data, "cs-a", parts=5)
    assert await target.ius.write_staged(rows[:3]) == 3
    assert await target.ius.write_staged(rows[:3]) == 0
    assert await target.ius.write_staged(rows) == 2  # a replay that goes further
    assert await target.ius.write_staged(rows) == 0
    assert await target.ius.rows("doc-1") == rows
    assert await target.ius.change_set("cs-a") == rows


async def test_write_staged_of_nothing_adds_nothing(target: TargetUnderTest) -> None:
    assert await target.ius.write_staged([]) == 0
    assert await target.ius.rows("doc-1") == []


async def test_a_row_of_another_change_set_refuses_the_whole_batch(
    target: TargetUnderTest,
) -> None:
    data = article_source(6)
    version = await target.publish("doc-1", data)
    other_data = article_source(3, tag=" other")
    other_doc = await target.publish("doc-2", other_data)
    held = cut(version, data, "cs-a", parts=4)
    assert await target.ius.write_staged(held[:2]) == 2

    theirs = cut(version, data, "cs-b", parts=4)  # same keys, another change set
    batch = [*cut(other_doc, other_data, "cs-b", parts=3), *theirs[2:], theirs[1]]
    with pytest.raises(StopVerifyFailed) as caught:
        await target.ius.write_staged(batch)
    assert "cs-a" in str(caught.value)
    assert caught.value.code == "STOP_VERIFY_FAILED"

    # Nothing of the batch: not the rows before or after the conflict, nor another doc's.
    assert await target.ius.rows("doc-1") == held[:2]
    assert await target.ius.rows("doc-2") == []
    assert await target.ius.change_set("cs-b") == []
    assert await target.ius.change_set("cs-a") == held[:2]


async def test_a_changed_row_of_the_same_change_set_is_refused_not_skipped(
    target: TargetUnderTest,
) -> None:
    """ "Rows already present unchanged are skipped" (cutter/core/ports.py): a row present
    with another region under the same change set is a conflict, not a replay."""
    data = article_source(6)
    version = await target.publish("doc-1", data)
    rows = cut(version, data, "cs-a", parts=3)
    assert await target.ius.write_staged(rows) == 3
    shifted = cut(version, data, "cs-a", parts=2)  # ordinals 0, 1 with other regions
    with pytest.raises(StopVerifyFailed):
        await target.ius.write_staged(shifted)
    assert await target.ius.rows("doc-1") == rows


async def test_rows_are_ordered_by_version_then_ordinal_and_change_sets_by_ordinal(
    target: TargetUnderTest,
) -> None:
    data_a, data_b = article_source(12, tag=" a"), article_source(12, tag=" b")
    va = await target.publish("doc-1", data_a)
    vb = await target.publish("doc-1", data_b)
    first, second = sorted([va, vb], key=lambda v: v.sv_id)
    order = [10, 2, 11, 0, 1, 3, 9, 4, 5, 6, 7, 8]
    rows_a = cut(va, data_a, "cs-a", parts=12, ordinals=order)
    rows_b = cut(vb, data_b, "cs-b", parts=12, ordinals=order)
    other_data = article_source(3, tag=" other")
    other = cut(await target.publish("doc-2", other_data), other_data, "cs-c")
    # Written in an order that is neither.
    assert await target.ius.write_staged([*rows_b[6:], *other, *rows_a[::-1]]) == 21
    assert await target.ius.write_staged(rows_b[:6]) == 6

    by_ordinal_a = sorted(rows_a, key=lambda r: r.ordinal)
    by_ordinal_b = sorted(rows_b, key=lambda r: r.ordinal)
    expected = {va.sv_id: by_ordinal_a, vb.sv_id: by_ordinal_b}
    assert await target.ius.rows("doc-1") == expected[first.sv_id] + expected[second.sv_id]
    assert [r.ordinal for r in await target.ius.change_set("cs-a")] == list(range(12))
    assert await target.ius.change_set("cs-a") == by_ordinal_a
    assert await target.ius.change_set("cs-b") == by_ordinal_b
    assert await target.ius.rows("doc-2") == other
    assert await target.ius.change_set("cs-unknown") == []
    assert await target.ius.rows("doc-unknown") == []


@pytest.mark.parametrize("parts", [1000, 1001])
async def test_a_read_back_of_many_rows_is_every_row_in_order(
    target: TargetUnderTest, parts: int
) -> None:
    """More rows than the PostgreSQL store reads per round trip (``READ_BATCH``, 500):
    an exact multiple of it and one more, in ordinal order, none lost or repeated."""
    data = article_source(parts)
    version = await target.publish("doc-1", data)
    rows = cut(version, data, "cs-a", parts=parts)
    assert await target.ius.write_staged(rows[::-1]) == parts
    assert await target.ius.change_set("cs-a") == rows
    assert await target.ius.rows("doc-1") == rows


async def test_enact_activates_the_change_set_and_supersedes_the_docs_other_rows(
    target: TargetUnderTest,
) -> None:
    old_data, new_data = article_source(4, tag=" v1"), article_source(5, tag=" v2")
    old = await target.publish("doc-1", old_data)
    old_rows = cut(old, old_data, "cs-old", parts=3)
    assert await target.ius.write_staged(old_rows) == 3
    assert await target.ius.enact("cs-old") == 3
    other_data = article_source(3, tag=" other")
    other_rows = cut(await target.publish("doc-2", other_data), other_data, "cs-other")
    await target.ius.write_staged(other_rows)
    assert await target.ius.enact("cs-other") == 3

    new = await target.publish("doc-1", new_data)
    new_rows = cut(new, new_data, "cs-new", parts=4)
    assert await target.ius.write_staged(new_rows) == 4
    assert {r.state for r in await target.ius.change_set("cs-new")} == {IUState.STAGED}
    assert {r.state for r in await target.ius.change_set("cs-old")} == {IUState.ACTIVE}

    assert await target.ius.enact("cs-new") == 4
    after = await target.ius.change_set("cs-new")
    assert after == [msgspec.structs.replace(r, state=IUState.ACTIVE) for r in new_rows]
    superseded = [msgspec.structs.replace(r, state=IUState.SUPERSEDED) for r in old_rows]
    assert await target.ius.change_set("cs-old") == superseded
    # Another document's active rows are not touched.
    assert {r.state for r in await target.ius.rows("doc-2")} == {IUState.ACTIVE}

    snapshot = await target.ius.rows("doc-1")
    assert await target.ius.enact("cs-new") == 4  # idempotent
    assert await target.ius.rows("doc-1") == snapshot
    assert await target.ius.enact("cs-unknown") == 0
    assert await target.ius.rows("doc-1") == snapshot


async def test_backup_round_trip_restores_exactly(target: TargetUnderTest) -> None:
    old_data, new_data = article_source(4, tag=" v1"), article_source(5, tag=" v2")
    old = await target.publish("doc-1", old_data)
    await target.ius.write_staged(cut(old, old_data, "cs-old", parts=3))
    await target.ius.enact("cs-old")
    staged_data = article_source(2, tag=" staged")
    staged = await target.publish("doc-1", staged_data)
    await target.ius.write_staged(cut(staged, staged_data, "cs-staged", parts=2))
    other_data = article_source(3, tag=" other")
    other_rows = cut(await target.publish("doc-2", other_data), other_data, "cs-other")
    await target.ius.write_staged(other_rows)

    before = await target.ius.rows("doc-1")
    assert {r.state for r in before} == {IUState.ACTIVE, IUState.STAGED}
    backup = Backup(doc_id="doc-1", rows=tuple(before))
    assert await target.ius.save_backup(backup) == backup.backup_id
    assert await target.ius.save_backup(backup) == backup.backup_id  # idempotent

    new = await target.publish("doc-1", new_data)
    await target.ius.write_staged(cut(new, new_data, "cs-new", parts=4))
    await target.ius.enact("cs-new")
    assert await target.ius.rows("doc-1") != before

    loaded = await target.ius.load_backup(backup.backup_id)
    assert loaded == backup
    await target.ius.restore(loaded)
    assert await target.ius.rows("doc-1") == before
    assert await target.ius.change_set("cs-new") == []
    assert await target.ius.rows("doc-2") == other_rows


async def test_restoring_an_empty_backup_deletes_the_documents_rows(
    target: TargetUnderTest,
) -> None:
    empty = Backup(doc_id="doc-1", rows=())
    await target.ius.save_backup(empty)
    data = article_source(4)
    await target.ius.write_staged(cut(await target.publish("doc-1", data), data, "cs-a"))
    other_data = article_source(3, tag=" other")
    other_rows = cut(await target.publish("doc-2", other_data), other_data, "cs-other")
    await target.ius.write_staged(other_rows)

    await target.ius.restore(await target.ius.load_backup(empty.backup_id))
    assert await target.ius.rows("doc-1") == []
    assert await target.ius.change_set("cs-a") == []
    assert await target.ius.rows("doc-2") == other_rows


# -- refusals that write nothing, restarts, coroutines racing -------------------------

HOSTILE = [
    "../escape",
    "/etc/passwd",
    "a/b",
    "..",
    ".hidden",
    "",
    "nul\x00byte",
    "sp ace",
    "x" * 200,
    "back\\slash",
    "-leading-dash",
]


@pytest.fixture(params=[b for b in TARGET_BACKENDS if b != "memory"])
def db_backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "pg":
        return Backend("pg", request.getfixturevalue("pg_db"))
    return Backend(request.param)


@pytest.fixture
async def db_target(db_backend: Backend) -> AsyncIterator[TargetUnderTest]:
    """The database target stores (the in-memory fake keeps no bytes to reopen or to
    read back raw)."""
    async with open_target(db_backend) as opened:
        yield opened


@pytest.mark.parametrize("bad", HOSTILE)
async def test_hostile_ids_are_refused_at_publish_before_anything_is_stored(
    target: TargetUnderTest, bad: str
) -> None:
    """Publishing under a hostile document id, or with a hostile ``sv_id``, is refused
    by every store's one ingest port before anything is stored."""
    data = article_source(3)
    before = await target.stored()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: target.publisher.publish(bad, data),
        lambda: target.publisher.publish("doc-1", data, sv_id=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifier):
            await call()
    assert await target.stored() == before


@pytest.mark.parametrize("bad", HOSTILE)
async def test_hostile_ids_are_refused_before_anything_is_stored(
    target: TargetUnderTest, bad: str
) -> None:
    data = article_source(3)
    good = cut(await target.publish("doc-1", data), data, "cs-a")
    before = await target.stored()
    smuggled = msgspec.structs.replace(good[0], doc_id=bad)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: target.sources.current(bad),
        lambda: target.sources.content(bad),
        lambda: target.sources.mark_cut(bad, "cs-a"),
        lambda: target.sources.cut_by(bad),
        lambda: target.ius.rows(bad),
        lambda: target.ius.write_staged([*good, smuggled]),
        lambda: target.ius.restore(Backup(doc_id=bad, rows=())),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifier):
            await call()
    assert await target.stored() == before


async def test_a_backup_holding_rows_of_another_document_is_not_restored(
    target: TargetUnderTest,
) -> None:
    """A restore replaces one document's rows: a backup that would write rows of another
    document is ``CorruptRecord`` on every store, and changes nothing."""
    await populate(target)
    before = await target.stored()
    stray = Backup(doc_id="doc-2", rows=tuple(await target.ius.rows("doc-1")))
    assert stray.rows
    with pytest.raises(CorruptRecord, match="rows of another document"):
        await target.ius.restore(stray)
    assert await target.stored() == before


async def test_a_refused_batch_writes_nothing(target: TargetUnderTest) -> None:
    await populate(target)
    data = article_source(6, tag=" new doc")
    version = await target.publish("doc-9", data)
    before = await target.stored()
    held = await target.ius.rows("doc-1")
    clash = msgspec.structs.replace(held[0], change_set_id="cs-thief")
    with pytest.raises(StopVerifyFailed, match=held[0].change_set_id):
        await target.ius.write_staged([*cut(version, data, "cs-9"), clash])
    assert await target.stored() == before  # not even doc-9's rows, which were new


async def test_a_batch_repeating_a_key_with_another_region_is_refused(
    target: TargetUnderTest,
) -> None:
    data = article_source(6)
    version = await target.publish("doc-1", data)
    rows = cut(version, data, "cs-a")
    twin = msgspec.structs.replace(rows[0], region_sha="0" * 64)
    with pytest.raises(StopVerifyFailed):
        await target.ius.write_staged([*rows, twin])
    assert await target.ius.rows("doc-1") == []
    assert await target.ius.write_staged([*rows, rows[0]]) == 3  # an exact repeat is one row


async def _stored_backup(target: TargetUnderTest, backup_id: str) -> bytes | None:
    if target.db is not None:
        payload = await admin_fetchval(
            target.db.admin_dsn, "SELECT payload FROM backups WHERE backup_id = $1", backup_id
        )
    else:
        assert isinstance(target.ius, SqliteIUStore)
        payload = target.ius.db.value(
            "SELECT payload FROM backups WHERE backup_id = ?", (backup_id,)
        )
    return None if payload is None else bytes(payload)


async def _store_backup(target: TargetUnderTest, backup_id: str, payload: bytes) -> None:
    """``payload`` under ``backup_id``, as an older cutter may have written it."""
    if target.db is not None:
        await admin_fetchval(
            target.db.admin_dsn,
            "INSERT INTO backups (backup_id, doc_id, payload) VALUES ($1, 'doc-1', $2)"
            " RETURNING backup_id",
            backup_id,
            payload,
        )
        return
    assert isinstance(target.ius, SqliteIUStore)
    await target.ius.db.write(
        lambda c: c.execute(
            "INSERT INTO backups (backup_id, doc_id, payload) VALUES (?, 'doc-1', ?)",
            (backup_id, payload),
        )
    )


async def test_every_database_store_saves_one_backup_encoding_and_loads_what_was_saved(
    db_target: TargetUnderTest,
) -> None:
    """Both database stores save a backup as its canonical bytes (``encode_backup``) and
    load any JSON encoding of one (SQLite wrote the canonical bytes, PostgreSQL msgspec's
    plain encoder, byte-equal for a Struct; here the fields in another order); bytes that
    are not the backup their id names are ``CorruptRecord``."""
    target = db_target
    data = article_source(3)
    rows = tuple(cut(await target.publish("doc-1", data), data, "cs-a"))
    saved = Backup(doc_id="doc-1", rows=rows)
    await target.ius.save_backup(saved)
    assert await _stored_backup(target, saved.backup_id) == canonical(saved)

    older = Backup(doc_id="doc-1", rows=rows[:1])
    reordered = msgspec.json.encode(dict(reversed(msgspec.to_builtins(older).items())))
    assert reordered != canonical(older)
    await _store_backup(target, older.backup_id, reordered)
    assert await target.ius.load_backup(older.backup_id) == older
    other = Backup(doc_id="doc-1", rows=rows[1:2])
    await _store_backup(target, other.backup_id, canonical(older))
    with pytest.raises(CorruptRecord, match="does not match its id"):
        await target.ius.load_backup(other.backup_id)
    await _store_backup(target, "bk-garbled", b"{not json")
    with pytest.raises(CorruptRecord, match="bk-garbled"):
        await target.ius.load_backup("bk-garbled")


async def test_reopened_stores_read_the_same_state_and_carry_on(db_target: TargetUnderTest) -> None:
    target = db_target
    backup_id = await populate(target)
    before = await view(target, backup_id)
    assert len(before["entries"]) == 3  # type: ignore[arg-type]

    again = await target.reopen()
    assert await view(again, backup_id) == before
    assert await again.ius.enact("cs-new") == 4
    assert await again.ledger.append(envelopes()[0]) == before["entries"][0]  # type: ignore[index]
    fourth = await again.ledger.append(nth_envelope(4))
    assert (fourth.seq, fourth.prev_hash) == (3, before["head"])
    third = await target.reopen()
    assert await third.ius.change_set("cs-new") == await again.ius.change_set("cs-new")
    assert await third.ledger.verify() == fourth.entry_hash


async def test_concurrent_batches_of_different_documents_lose_nothing(
    target: TargetUnderTest,
) -> None:
    expected: dict[str, list[IURow]] = {}
    for d in range(8):
        data = article_source(6, tag=f" doc {d}")
        version = await target.publish(f"doc-{d}", data)
        expected[f"doc-{d}"] = cut(version, data, f"cs-{d}", parts=5)
    added: list[int] = []

    async def write(rows: list[IURow]) -> None:
        added.append(await target.ius.write_staged(rows))

    async with anyio.create_task_group() as tg:
        for rows in expected.values():
            tg.start_soon(write, rows[:3])
            tg.start_soon(write, rows[3:])
            tg.start_soon(write, rows)  # overlaps both: adds what they have not
    assert sum(added) == 5 * len(expected)
    reopened = await target.reopen()
    for d, (doc_id, rows) in enumerate(expected.items()):
        assert await target.ius.rows(doc_id) == rows
        assert await reopened.ius.change_set(f"cs-{d}") == rows


async def test_concurrent_conflicting_batches_have_one_winner(target: TargetUnderTest) -> None:
    data = article_source(6)
    version = await target.publish("doc-1", data)
    outcomes: dict[str, str] = {}

    async def write(change_set_id: str) -> None:
        try:
            await target.ius.write_staged(cut(version, data, change_set_id))
        except StopVerifyFailed:
            outcomes[change_set_id] = "refused"
        else:
            outcomes[change_set_id] = "won"

    async with anyio.create_task_group() as tg:
        for n in range(6):
            tg.start_soon(write, f"cs-{n}")
    [winner] = [cs for cs, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 6
    assert {r.change_set_id for r in await target.ius.rows("doc-1")} == {winner}


async def test_concurrent_enacts_and_batches_lose_nothing(target: TargetUnderTest) -> None:
    for d in range(6):
        data = article_source(4, tag=f" {d}")
        version = await target.publish(f"doc-{d}", data)
        await target.ius.write_staged(cut(version, data, f"cs-{d}"))

    async def enact_then_write(d: int) -> None:
        assert await target.ius.enact(f"cs-{d}") == 3
        data = article_source(5, tag=f" {d} next")
        version = await target.publish(f"doc-{d}", data)
        assert await target.ius.write_staged(cut(version, data, f"cs-{d}-next")) == 3

    async with anyio.create_task_group() as tg:
        for d in range(6):
            tg.start_soon(enact_then_write, d)
    for d in range(6):
        states = [r.state for r in await target.ius.change_set(f"cs-{d}")]
        assert states == [IUState.ACTIVE] * 3
        assert len(await target.ius.change_set(f"cs-{d}-next")) == 3
        assert len(await target.ius.rows(f"doc-{d}")) == 6


async def test_concurrent_ledger_appends_lose_nothing_and_verify(
    db_target: TargetUnderTest,
) -> None:
    target = db_target
    appended: list[int] = []

    async def append(n: int) -> None:
        appended.append((await target.ledger.append(nth_envelope(n))).seq)

    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(append, n)
            tg.start_soon(append, n)  # the same envelope twice: one entry
    entries = await target.ledger.entries()
    assert sorted(e.envelope.run_id for e in entries) == sorted(f"run-{n}" for n in range(40))
    assert [e.seq for e in entries] == list(range(40))
    assert sorted(set(appended)) == list(range(40))
    assert len(appended) == 80
    assert await target.ledger.verify() == verify_chain(entries) == entries[-1].entry_hash
    assert await (await target.reopen()).ledger.verify() == entries[-1].entry_hash


async def test_concurrent_mark_cut_has_one_winner(target: TargetUnderTest) -> None:
    version = await target.publish("doc-1", b"bytes")
    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(target.sources.mark_cut, version.sv_id, f"cs-{n}")
    winner = await target.sources.cut_by(version.sv_id)
    assert winner is not None
    assert winner.startswith("cs-")
    assert await (await target.reopen()).sources.cut_by(version.sv_id) == winner


# == Ledger ===========================================================================


async def test_appends_chain_from_genesis(target: TargetUnderTest) -> None:
    expected = []
    head = None
    for envelope in envelopes():
        head = next_entry(head, envelope)
        expected.append(head)

    appended = [await target.ledger.append(e) for e in envelopes()]
    assert appended == expected
    assert [e.seq for e in appended] == [0, 1, 2]
    assert appended[0].prev_hash == GENESIS_HASH
    for before, entry in zip([None, *appended], appended, strict=False):
        prev = before.entry_hash if before else GENESIS_HASH
        assert entry.prev_hash == prev
        assert entry.entry_hash == chain_hash(prev, entry.envelope)
    assert await target.ledger.entries() == expected
    assert verify_chain(await target.ledger.entries()) == expected[-1].entry_hash
    if isinstance(target.ledger, PgLedger | SqliteLedger):
        assert await target.ledger.verify() == expected[-1].entry_hash


async def test_an_envelope_appended_twice_is_one_entry(target: TargetUnderTest) -> None:
    first, second, third = envelopes()
    one = await target.ledger.append(first)
    assert await target.ledger.append(first) == one
    two = await target.ledger.append(second)
    assert await target.ledger.append(first) == one  # also once others followed
    assert await target.ledger.append(second) == two
    three = await target.ledger.append(third)
    assert await target.ledger.entries() == [one, two, three]
    if target.db is not None:
        assert await admin_fetchval(target.db.admin_dsn, "SELECT count(*) FROM ledger") == 3


async def test_one_entry_is_read_by_its_seq_its_envelope_or_as_the_head(
    target: TargetUnderTest,
) -> None:
    ledger = target.ledger
    first, second, third = envelopes()
    assert (await ledger.head(), await ledger.at(0), await ledger.find(first)) == (None,) * 3
    appended = [await ledger.append(e) for e in (first, second)]
    assert [await ledger.at(seq) for seq in (0, 1, 2, -1)] == [*appended, None, None]
    assert await ledger.head() == appended[1]
    assert await ledger.find(second) == appended[1]
    assert await ledger.find(third) is None
    overlay = sandbox(Target(target.sources, target.ius, ledger)).ledger
    added = await overlay.append(third)  # a dry run's entry, on top of the stored ones
    assert added.seq == 2
    assert await overlay.head() == added
    assert await overlay.at(2) == added
    assert await overlay.at(1) == appended[1]
    assert await overlay.find(first) == appended[0]
    assert await overlay.append(first) == appended[0]
    assert await ledger.head() == appended[1]  # the dry run's entry stayed in its sandbox


async def test_stored_reads_every_entry_as_stored(target: TargetUnderTest) -> None:
    """What verify-ledger reads: the envelope as its stored (canonical) bytes."""
    assert isinstance(target.ledger, LedgerReader)
    assert await target.ledger.stored() == []
    appended = [await target.ledger.append(e) for e in envelopes()]
    assert [
        (s.seq, s.prev_hash, s.entry_hash, s.envelope) for s in await target.ledger.stored()
    ] == [(e.seq, e.prev_hash, e.entry_hash, canonical(e.envelope)) for e in appended]


async def test_an_empty_ledger_verifies_to_genesis(target: TargetUnderTest) -> None:
    assert await target.ledger.entries() == []
    assert verify_chain([]) == GENESIS_HASH
    if isinstance(target.ledger, PgLedger | SqliteLedger):
        assert await target.ledger.verify() == GENESIS_HASH


# == KnowledgeBase ====================================================================


async def test_kb_put_then_get_round_trips(records: RecordsUnderTest) -> None:
    docs = {
        "runs/run-1/phases/00-source_pin": phase_doc("run-1", note="n\u00fcl \x00 and \u2028"),
        "runs/run-1/gates/SG_1/approvals/alice": approval_doc("run-1"),
    }
    for kb_id, doc in docs.items():
        await records.kb.put(kb_id, doc)
    for kb_id, doc in docs.items():
        assert await records.kb.get(kb_id) == doc


async def test_kb_put_replaces_and_a_replay_changes_nothing(records: RecordsUnderTest) -> None:
    kb_id = "runs/run-1/phases/00-source_pin"
    await records.kb.put(kb_id, phase_doc("run-1", note="first"))
    await records.kb.put(kb_id, phase_doc("run-1", note="second"))
    assert await records.kb.get(kb_id) == phase_doc("run-1", note="second")
    await records.kb.put(kb_id, phase_doc("run-1", note="second"))
    assert await records.kb.get(kb_id) == phase_doc("run-1", note="second")
    assert await records.kb.list("") == [kb_id]


async def test_kb_list_takes_whole_segments_as_the_prefix(records: RecordsUnderTest) -> None:
    ids = [
        "runs/run-1",
        "runs/run-1/phases/00-source_pin",
        "runs/run-1/phases/01-mark",
        "runs/run-1-b/x",
        "runs/run-10",
        "runs/run-10/phases/00-source_pin",
        "runs/run-1_c",
        "runs/Run-1/y",
        "runs",
        "runs-index/run-1",
    ]
    for kb_id in ids:
        await records.kb.put(kb_id, phase_doc())
    assert await records.kb.list("runs/run-1") == [
        "runs/run-1",
        "runs/run-1/phases/00-source_pin",
        "runs/run-1/phases/01-mark",
    ]
    assert await records.kb.list("runs/run-10") == [
        "runs/run-10",
        "runs/run-10/phases/00-source_pin",
    ]
    assert await records.kb.list("runs/run-1/phases") == [
        "runs/run-1/phases/00-source_pin",
        "runs/run-1/phases/01-mark",
    ]
    assert await records.kb.list("runs") == sorted(i for i in ids if i != "runs-index/run-1")
    assert await records.kb.list("") == sorted(ids)
    assert await records.kb.list("runs/run") == []
    assert await records.kb.list("nothing") == []


async def test_kb_get_of_a_missing_doc_is_key_error(records: RecordsUnderTest) -> None:
    await records.kb.put("runs/run-1", phase_doc())
    with pytest.raises(KeyError) as caught:
        await records.kb.get("runs/run-2")
    assert caught.value.args == ("runs/run-2",)


async def test_kb_get_of_a_large_doc_reads_what_is_stored_now_every_time(
    records: RecordsUnderTest,
) -> None:
    """A doc past the PostgreSQL KB's cache threshold (``CACHE_MIN_BYTES``) read twice,
    then changed, corrupted and deleted behind the store's back: every ``get`` returns
    what the stored bytes decode to now, or raises as decoding them would."""
    kb_id = "runs/run-1/phases/03-cutplan"
    big = msgspec.structs.replace(phase_doc("run-1"), note="x" * (100 * 1024))
    other = msgspec.structs.replace(phase_doc("run-1"), note="y" * (100 * 1024))
    await records.kb.put(kb_id, big)
    first = await records.kb.get(kb_id)
    assert first == big
    assert isinstance(first, PhaseDoc)
    first.pins_added.clear()  # what one caller does to its doc, no other caller sees
    assert await records.kb.get(kb_id) == big
    if records.db is not None:  # the second get was answered from the cache
        assert kb_id in records.kb._decoded  # type: ignore[attr-defined]
    await records.corrupt_kb(kb_id, msgspec.json.encode(other))
    assert await records.kb.get(kb_id) == other
    assert await records.kb.get(kb_id) == other
    await records.kb.put(kb_id, big)
    assert await records.kb.get(kb_id) == big
    await records.corrupt_kb(kb_id, b'{"type": "phase", "run_id": "run-1"')
    with pytest.raises(CorruptRecord):
        await records.kb.get(kb_id)
    await records.kb.put(kb_id, big)
    assert await records.kb.get(kb_id) == big
    await records.delete_kb(kb_id)
    with pytest.raises(KeyError):
        await records.kb.get(kb_id)


GARBAGE = [
    pytest.param(b"\xde\xad\xbe\xef", id="binary"),
    pytest.param(b"", id="empty"),
    pytest.param(b'{"type": "phase", "run_id": "run-1"', id="truncated"),
    pytest.param(b'{"type": "nonsense", "run_id": "run-1"}', id="unknown-tag"),
    pytest.param(b"[1, 2, 3]", id="wrong-shape"),
    pytest.param(b'"\xff\xfe"', id="invalid-utf8"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_kb_get_of_corrupt_bytes_is_corrupt_record_naming_the_id(
    records: RecordsUnderTest, garbage: bytes
) -> None:
    kb_id = "runs/run-1/phases/00-source_pin"
    await records.kb.put(kb_id, phase_doc("run-1"))
    await records.kb.put("runs/run-2", phase_doc("run-2"))
    await records.corrupt_kb(kb_id, garbage)
    with pytest.raises(CorruptRecord) as caught:
        await records.kb.get(kb_id)
    assert kb_id in caught.value.location
    assert kb_id in str(caught.value)
    assert caught.value.code == "E_CORRUPT_RECORD"
    assert await records.kb.get("runs/run-2") == phase_doc("run-2")  # the rest still reads


# == RunStore =========================================================================


async def test_run_create_then_load_round_trips_and_save_replaces(
    records: RecordsUnderTest,
) -> None:
    await records.runs.create(sidecar("run-b"))
    await records.runs.create(sidecar("run-a"))
    assert await records.runs.load("run-a") == sidecar("run-a")
    assert await records.runs.load("run-b") == sidecar("run-b")
    replaced = next_revision(sidecar("run-a"), started_by="someone else")
    await records.runs.save(replaced)
    assert await records.runs.load("run-a") == replaced
    assert await records.runs.run_ids() == ["run-a", "run-b"]


async def test_loading_an_unknown_run_is_unknown_run(records: RecordsUnderTest) -> None:
    await records.runs.create(sidecar("run-a"))
    with pytest.raises(UnknownRun) as caught:
        await records.runs.load("run-z")
    assert caught.value.run_id == "run-z"
    assert await records.runs.run_ids() == ["run-a"]


async def test_a_stale_save_is_run_changed_and_saves_nothing(records: RecordsUnderTest) -> None:
    """Two walkers hold the same revision: the first save wins, the second is refused
    by the store itself, whatever it holds (compare-and-save, not load-then-save)."""
    held = sidecar("run-a")
    await records.runs.create(held)
    first = next_revision(held, started_by="first walker")
    await records.runs.save(first)
    for stale in (
        next_revision(held, started_by="second walker"),
        next_revision(held, started_by="first walker"),  # even the same content
        held,  # a revision that was stored already
        sidecar("run-a", revision=first.revision + 5),  # a revision from the future
    ):
        with pytest.raises(RunChanged) as caught:
            await records.runs.save(stale)
        assert caught.value.code == "E_RUN_CHANGED"
        assert caught.value.run_id == "run-a"
        assert await records.runs.load("run-a") == first
    second = next_revision(first, started_by="after the first")  # the winner goes on
    await records.runs.save(second)
    assert await records.runs.load("run-a") == second


async def test_a_stale_terminal_save_frees_no_document(records: RecordsUnderTest) -> None:
    held = sidecar("run-a")
    await records.runs.create(held)
    await records.runs.save(next_revision(held))
    with pytest.raises(RunChanged):
        await records.runs.save(next_revision(held, state=RunState.ABORTED))
    with pytest.raises(DocumentBusy):
        await records.runs.create(sidecar("run-b", doc_id=held.doc_id))


async def test_saving_a_run_never_created_is_unknown_run_and_creates_nothing(
    records: RecordsUnderTest,
) -> None:
    approval = "runs/run-a/gates/SG_1/approvals/alice"
    for revision in (0, 1):
        with pytest.raises(UnknownRun) as caught:
            await records.runs.save(sidecar("run-a", revision=revision))
        assert caught.value.run_id == "run-a"
        with pytest.raises(UnknownRun):
            await records.runs.save_consuming(
                sidecar("run-a", revision=revision), approval_use(approval)
            )
    assert await records.runs.run_ids() == []
    assert await records.runs.consumed_by(approval) is None
    assert await records.runs.consumed_for("run-a") == []


async def test_a_stale_save_consuming_is_run_changed_and_consumes_nothing(
    records: RecordsUnderTest,
) -> None:
    """Two resumers hold the same revision, each with its own approval: the second
    save is refused and its approval stays unconsumed, usable by a current walker."""
    first_approval = "runs/run-a/gates/SG_1/approvals/alice"
    second_approval = "runs/run-a/gates/SG_1/approvals/bob"
    held = sidecar("run-a")
    await records.runs.create(held)
    first = next_revision(held, started_by="first resumer")
    await records.runs.save_consuming(first, approval_use(first_approval))
    with pytest.raises(RunChanged) as caught:
        await records.runs.save_consuming(
            next_revision(held, started_by="second resumer"), approval_use(second_approval)
        )
    assert caught.value.code == "E_RUN_CHANGED"
    assert await records.runs.load("run-a") == first
    assert await records.runs.consumed_by(second_approval) is None
    assert await records.runs.consumed_for("run-a") == [first_approval]
    # Not consumed: a walker holding the stored revision can use it.
    current = next_revision(first, started_by="current")
    await records.runs.save_consuming(current, approval_use(second_approval))
    assert await records.runs.consumed_by(second_approval) == "run-a"
    assert await records.runs.load("run-a") == current


# == Outbox (the RunStore's notifications, docs/notifications.md) =========================


async def _notice_ids(records: RecordsUnderTest, run_id: str | None = None) -> list[str]:
    return [r.notice.notice_id for r in await records.runs.notifications(run_id, 100)]


async def test_every_save_enqueues_its_sidecars_notices_once(records: RecordsUnderTest) -> None:
    """create, save and save_consuming each write notices_for(sidecar) into the outbox,
    and saving the same facts again enqueues nothing new."""
    held = sidecar("run-a")
    await records.runs.create(held)
    assert await _notice_ids(records) == [n.notice_id for n in notices_for(held)]
    approval = "runs/run-a/gates/SG_1/approvals/alice"
    use = approval_use(approval)
    (gate,) = held.gates
    consumed = next_revision(
        held, state=RunState.RUNNING, gates=(msgspec.structs.replace(gate, uses=(use,)),)
    )
    await records.runs.save_consuming(consumed, use)
    again = next_revision(consumed, started_by="same facts")
    await records.runs.save(again)
    listed = await records.runs.notifications(None, 100)
    assert [r.notice for r in listed] == notices_for(consumed)
    assert [r.notice.event for r in listed] == ["gate_opened", "approval_consumed"]
    assert {r.dispatched for r in listed} == {False}
    stopped = next_revision(again, state=RunState.ABORTED)
    await records.runs.save(stopped)
    assert [r.notice.event for r in await records.runs.notifications("run-a", 100)] == [
        "gate_opened",
        "approval_consumed",
        "run_stopped",
    ]
    assert await records.runs.notifications("run-b", 100) == []


async def test_a_refused_save_enqueues_nothing(records: RecordsUnderTest) -> None:
    """The notices are written in the save's transaction: a save refused (RunChanged,
    ApprovalConsumedAlready, DocumentBusy) leaves the outbox as it was."""
    held = sidecar("run-a")
    await records.runs.create(held)
    first = next_revision(held, started_by="first walker")
    await records.runs.save(first)
    before = await records.runs.notifications(None, 100)
    approval = "runs/run-a/gates/SG_1/approvals/alice"
    (gate,) = held.gates
    use = approval_use(approval)
    stale = next_revision(
        held, state=RunState.REJECTED, gates=(msgspec.structs.replace(gate, uses=(use,)),)
    )
    with pytest.raises(RunChanged):
        await records.runs.save(stale)
    with pytest.raises(RunChanged):
        await records.runs.save_consuming(stale, use)
    with_use = next_revision(first, gates=stale.gates)
    await records.runs.save_consuming(with_use, use)
    after_use = await records.runs.notifications(None, 100)
    assert len(after_use) == len(before) + 1
    with pytest.raises(ApprovalConsumedAlready):
        await records.runs.save_consuming(next_revision(with_use, state=RunState.REJECTED), use)
    with pytest.raises(DocumentBusy):
        await records.runs.create(sidecar("run-b", doc_id=held.doc_id))
    assert await records.runs.notifications(None, 100) == after_use
    assert [r.notice.event for r in after_use] == ["gate_opened", "approval_consumed"]


async def test_deliveries_are_dispatched_once_and_their_attempts_kept(
    records: RecordsUnderTest,
) -> None:
    """A notice fans out into one delivery per endpoint, once; an attempt's count, next
    time and error are what a restarted store (reopen) reads back."""
    await records.runs.create(sidecar("run-a"))
    (notice,) = await records.runs.undispatched(10)
    a, b = "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"
    await records.runs.dispatch(notice.notice_id, [a, b], T0)
    await records.runs.dispatch(notice.notice_id, [a, b, "http://127.0.0.1:9/c"], T0)
    assert await records.runs.undispatched(10) == []
    due = sorted(await records.runs.due(T0, 10), key=lambda d: d.delivery.endpoint)
    assert [(d.notice, d.delivery.endpoint, d.delivery.attempts) for d in due] == [
        (notice, a, 0),
        (notice, b, 0),
    ]
    assert await records.runs.due(T0 - timedelta(seconds=1), 10) == []
    first = due[0].delivery
    failed = attempted(first, ok=False, error="HTTP 503", now=T0, max_attempts=3)
    await records.runs.record_attempt(failed)
    reopened = await records.reopen()
    assert [d.delivery for d in await reopened.due(T0, 10)] == [due[1].delivery]
    assert await reopened.next_due() == T0
    done = attempted(due[1].delivery, ok=True, error=None, now=T0, max_attempts=3)
    await reopened.record_attempt(done)
    assert await reopened.next_due() == failed.next_at == T0 + backoff(1)
    (record,) = await reopened.notifications(None, 10)
    assert record.dispatched
    kept = {d.endpoint: d for d in record.deliveries}
    assert kept == {first.endpoint: failed, done.endpoint: done}
    assert kept[first.endpoint].last_error == "HTTP 503"


async def test_a_reminder_is_enqueued_once(records: RecordsUnderTest) -> None:
    held = sidecar("run-a")
    await records.runs.create(held)
    ttl, before = timedelta(hours=1), timedelta(minutes=10)
    reminder = reminder_for(held, ttl, before, held.gates[0].opened_at + timedelta(minutes=55))
    assert reminder is not None
    assert await records.runs.enqueue(reminder)
    assert not await records.runs.enqueue(reminder)
    assert [r.notice for r in await records.runs.notifications(None, 10)][-1] == reminder
    assert len(await records.runs.notifications(None, 10)) == 2


async def test_a_consumed_approval_is_refused_before_the_revision_is_compared(
    records: RecordsUnderTest,
) -> None:
    approval = "runs/run-a/gates/SG_1/approvals/alice"
    held = sidecar("run-a")
    await records.runs.create(held)
    first = next_revision(held)
    await records.runs.save_consuming(first, approval_use(approval))
    with pytest.raises(ApprovalConsumedAlready):  # stale too: the precise answer wins
        await records.runs.save_consuming(next_revision(held), approval_use(approval))
    with pytest.raises(ApprovalConsumedAlready):
        await records.runs.save_consuming(sidecar("run-z"), approval_use(approval))
    assert await records.runs.load("run-a") == first


async def test_an_approval_is_consumed_once_and_the_loser_saves_nothing(
    records: RecordsUnderTest,
) -> None:
    approval = "runs/run-a/gates/SG_1/approvals/alice"
    assert await records.runs.consumed_by(approval) is None
    await records.runs.create(sidecar("run-a"))
    await records.runs.create(sidecar("run-b"))
    advanced = next_revision(sidecar("run-a"), started_by="advanced")
    await records.runs.save_consuming(advanced, approval_use(approval))
    assert await records.runs.load("run-a") == advanced
    assert await records.runs.consumed_by(approval) == "run-a"

    # The same run again, and another run: both refused, neither sidecar saved.
    with pytest.raises(ApprovalConsumedAlready):
        await records.runs.save_consuming(
            next_revision(advanced, started_by="second"), approval_use(approval)
        )
    with pytest.raises(ApprovalConsumedAlready) as caught:
        await records.runs.save_consuming(next_revision(sidecar("run-b")), approval_use(approval))
    assert approval in str(caught.value)
    assert await records.runs.load("run-a") == advanced
    assert await records.runs.load("run-b") == sidecar("run-b")
    assert await records.runs.consumed_by(approval) == "run-a"

    # Another approval is its own.
    other = "runs/run-b/gates/SG_1/approvals/bob"
    await records.runs.save_consuming(next_revision(sidecar("run-b")), approval_use(other))
    assert await records.runs.consumed_by(other) == "run-b"
    assert await records.runs.consumed_by(approval) == "run-a"
    assert await records.runs.consumed_for("run-a") == [approval]
    assert await records.runs.consumed_for("run-b") == [other]
    assert await records.runs.consumed_for("run-c") == []


async def test_concurrent_consumers_of_one_approval_have_one_winner(
    records: RecordsUnderTest,
) -> None:
    approval = "runs/run-0/gates/SG_1/approvals/alice"
    outcomes: dict[str, str] = {}

    async def consume(run_id: str) -> None:
        try:
            await records.runs.save_consuming(
                next_revision(sidecar(run_id)), approval_use(approval)
            )
        except ApprovalConsumedAlready:
            outcomes[run_id] = "refused"
        else:
            outcomes[run_id] = "won"

    for i in range(8):
        await records.runs.create(sidecar(f"run-{i}"))
    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(consume, f"run-{i}")
    winners = [run for run, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 8
    assert len(winners) == 1
    assert await records.runs.consumed_by(approval) == winners[0]
    for i in range(8):
        run_id = f"run-{i}"
        saved = next_revision(sidecar(run_id)) if run_id in winners else sidecar(run_id)
        assert await records.runs.load(run_id) == saved


async def test_concurrent_walkers_of_one_run_have_one_winner(records: RecordsUnderTest) -> None:
    """Eight walkers hold the same revision and save at once: exactly one is saved."""
    held = sidecar("run-a")
    await records.runs.create(held)
    outcomes: dict[str, str] = {}

    async def save(walker: str) -> None:
        try:
            await records.runs.save(next_revision(held, started_by=walker))
        except RunChanged:
            outcomes[walker] = "refused"
        else:
            outcomes[walker] = "won"

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(save, f"walker-{i}")
    winners = [walker for walker, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 8
    assert len(winners) == 1
    assert await records.runs.load("run-a") == next_revision(held, started_by=winners[0])


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_loading_a_corrupt_sidecar_is_corrupt_record_naming_the_run(
    records: RecordsUnderTest, garbage: bytes
) -> None:
    await records.runs.create(sidecar("run-a"))
    await records.runs.create(sidecar("run-b"))
    await records.corrupt_run("run-a", garbage)
    with pytest.raises(CorruptRecord) as caught:
        await records.runs.load("run-a")
    assert "run-a" in caught.value.location
    assert "run-a" in str(caught.value)
    assert await records.runs.load("run-b") == sidecar("run-b")


async def test_a_run_holding_another_runs_record_is_corrupt_not_the_other_run(
    records: RecordsUnderTest,
) -> None:
    await records.runs.create(sidecar("run-a"))
    await records.runs.create(sidecar("run-b"))
    await records.corrupt_run("run-a", encode_sidecar(sidecar("run-b")))
    with pytest.raises(CorruptRecord) as caught:
        await records.runs.load("run-a")
    assert "run-b" in str(caught.value)
    page = await records.runs.page("", 10, RunFilter())
    assert [getattr(found, "run_id", None) for found in page] == ["run-a", "run-b"]
    assert isinstance(page[0], UnreadableRun)
    assert page[1] == sidecar("run-b")


# -- ids and records every run store refuses -----------------------------------------

HOSTILE_KB_IDS = [
    "../x",
    "a/../b",
    "..",
    ".",
    "/abs",
    "a\x00b",
    "a\nb",
    "a\x1bb",
    "x" * 600,
    "",
    "a//b",
    "a/",
    ".hidden",
    "a\\b",
    "a b",
    "caf\u00e9",
    "a/b.json/c",
    "/".join("s" * 9),  # more than 8 segments
]
HOSTILE_RUN_IDS = ["../x", "a/b", "/abs", "a\x00b", "a\nb", "x" * 600, "", "..", ".x", "a b"]
APPROVAL_ID = "runs/run-a/gates/SG_1/approvals/alice"


@pytest.mark.parametrize("kb_id", HOSTILE_KB_IDS)
async def test_kb_refuses_hostile_ids_before_storing_anything(
    records: RecordsUnderTest, kb_id: str
) -> None:
    before = await records.stored()
    with pytest.raises(InvalidIdentifier):
        await records.kb.put(kb_id, phase_doc())
    with pytest.raises(InvalidIdentifier):
        await records.kb.get(kb_id)
    if kb_id:
        with pytest.raises(InvalidIdentifier):
            await records.kb.list(kb_id)
    assert await records.stored() == before
    assert await records.kb.list("") == []


@pytest.mark.parametrize("run_id", HOSTILE_RUN_IDS)
async def test_run_store_refuses_hostile_run_ids_before_storing_anything(
    records: RecordsUnderTest, run_id: str
) -> None:
    before = await records.stored()
    with pytest.raises(InvalidIdentifier):
        await records.runs.load(run_id)
    with pytest.raises(InvalidIdentifier):
        await records.runs.save(sidecar(run_id))
    with pytest.raises(InvalidIdentifier):
        await records.runs.save_consuming(sidecar(run_id), approval_use(APPROVAL_ID))
    assert await records.runs.consumed_by(APPROVAL_ID) is None  # refused before consuming
    assert await records.stored() == before


@pytest.mark.parametrize("kb_id", HOSTILE_KB_IDS)
async def test_run_store_refuses_hostile_approval_ids_before_storing_anything(
    records: RecordsUnderTest, kb_id: str
) -> None:
    before = await records.stored()
    with pytest.raises(InvalidIdentifier):
        await records.runs.save_consuming(sidecar(), approval_use(kb_id))
    with pytest.raises(InvalidIdentifier):
        await records.runs.consumed_by(kb_id)
    with pytest.raises(UnknownRun):
        await records.runs.load("run-a")  # refused before saving
    assert await records.stored() == before


async def test_records_the_store_could_not_read_back_are_refused(
    records: RecordsUnderTest,
) -> None:
    bad_doc = msgspec.structs.replace(phase_doc(), run_id=123)  # no type check at construction
    with pytest.raises(CorruptRecord, match="not written"):
        await records.kb.put("runs/run-a/stop", bad_doc)
    bad_run = msgspec.structs.replace(sidecar(), state="SLEEPING")
    with pytest.raises(CorruptRecord, match="not written"):
        await records.runs.save(bad_run)
    with pytest.raises(CorruptRecord, match="not written"):
        await records.runs.save_consuming(bad_run, approval_use(APPROVAL_ID))
    assert await records.runs.consumed_by(APPROVAL_ID) is None
    assert await records.runs.run_ids() == []
    assert await records.kb.list("") == []


async def test_stores_share_no_state_with_callers(records: RecordsUnderTest) -> None:
    doc = phase_doc()
    await records.kb.put("runs/run-a/phases/00-source_pin", doc)
    doc.pins_added[Pin.IU_COUNT] = 99  # frozen struct, mutable dict: the store must not care
    first = await records.kb.get("runs/run-a/phases/00-source_pin")
    assert isinstance(first, PhaseDoc)
    first.pins_added[Pin.BACKUP_ID] = "b"
    assert await records.kb.get("runs/run-a/phases/00-source_pin") == phase_doc()
    run = sidecar()
    await records.runs.create(run)
    run.pins[Pin.IU_COUNT] = 3
    loaded = await records.runs.load("run-a")
    loaded.pins[Pin.BACKUP_ID] = "b"
    assert await records.runs.load("run-a") == sidecar()


async def test_a_consumed_approval_refuses_even_its_own_run_and_overwrites_nothing(
    records: RecordsUnderTest,
) -> None:
    await records.runs.create(sidecar("run-a"))
    first = next_revision(sidecar("run-a"))
    await records.runs.save_consuming(first, approval_use(APPROVAL_ID))
    with pytest.raises(ApprovalConsumedAlready):
        await records.runs.save_consuming(
            next_revision(first, started_by="someone-else"), approval_use(APPROVAL_ID)
        )
    assert await records.runs.load("run-a") == first
    assert await records.runs.consumed_by(APPROVAL_ID) == "run-a"


async def test_consumed_for_lists_a_runs_consumptions_across_a_restart(
    records: RecordsUnderTest,
) -> None:
    runs = records.runs
    assert await runs.consumed_for("run-a") == []
    await runs.create(sidecar("run-a"))
    await runs.create(sidecar("run-b"))
    await runs.save_consuming(next_revision(sidecar("run-a")), approval_use(APPROVAL_ID))
    other, third = APPROVAL_ID.replace("alice", "bob"), APPROVAL_ID.replace("alice", "cy")
    await runs.save_consuming(next_revision(sidecar("run-b")), approval_use(other))
    await runs.save_consuming(next_revision(next_revision(sidecar("run-a"))), approval_use(third))
    assert await runs.consumed_for("run-a") == sorted([APPROVAL_ID, third])
    assert await runs.consumed_for("run-b") == [other]
    reopened = await records.reopen()
    assert await reopened.consumed_for("run-a") == sorted([APPROVAL_ID, third])
    with pytest.raises(ApprovalConsumedAlready):  # and the restart still refuses a reuse
        await reopened.save_consuming(sidecar("run-c"), approval_use(APPROVAL_ID))
    with pytest.raises(UnknownRun):
        await reopened.load("run-c")


async def test_long_approval_ids_sharing_a_long_prefix_are_distinct(
    records: RecordsUnderTest,
) -> None:
    head = "/".join(["s" * 60] * 7)
    first, second = head + "/" + "a" * 60, head + "/" + "b" * 60
    await records.runs.create(sidecar("run-a"))
    await records.runs.create(sidecar("run-b"))
    await records.runs.save_consuming(next_revision(sidecar("run-a")), approval_use(first))
    assert await records.runs.consumed_by(second) is None
    await records.runs.save_consuming(next_revision(sidecar("run-b")), approval_use(second))
    assert await records.runs.consumed_by(first) == "run-a"
    assert await records.runs.consumed_by(second) == "run-b"


# == GrantProbe =======================================================================


async def test_the_writer_holds_exactly_the_required_grants(backend: Backend) -> None:
    if backend.kind != "pg":  # the embedded writer is granted exactly what it needs
        grants = await StaticGrantProbe().writer_grants()
    else:
        pool = await create_pool(backend.pg.writer_dsn, role=WRITER, min_size=0)
        try:
            grants = await PgGrantProbe(pool).writer_grants()
        finally:
            await pool.close()
    assert grants.writer == WRITER
    assert grants.grants == REQUIRED_GRANTS


@pytest.mark.subprocess
async def test_any_login_acts_as_the_writer_through_the_pool_role(pg_db: PgDatabase) -> None:
    pool = await create_pool(pg_db.admin_dsn, role=WRITER, min_size=0)
    try:
        grants = await PgGrantProbe(pool).writer_grants()
    finally:
        await pool.close()
    assert grants.writer == WRITER
    assert grants.grants == REQUIRED_GRANTS


@pytest.mark.subprocess
async def test_the_superuser_holds_more_than_the_writer_needs(pg_db: PgDatabase) -> None:
    pool = await create_pool(pg_db.admin_dsn, role=None, min_size=0)
    try:
        grants = await PgGrantProbe(pool).writer_grants()
    finally:
        await pool.close()
    assert grants.writer == "postgres"
    assert set(grants.grants) > set(REQUIRED_GRANTS)
    assert {"ledger:update", "ledger:delete", "ledger:truncate"} <= set(grants.grants)
    assert list(grants.grants) == sorted(grants.grants)


@pytest.mark.subprocess
async def test_a_revoked_privilege_is_missing_from_the_probe(pg_db: PgDatabase) -> None:
    await admin_execute(pg_db.admin_dsn, "REVOKE UPDATE ON ius FROM cutter_writer")
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    try:
        grants = await PgGrantProbe(pool).writer_grants()
    finally:
        await pool.close()
    assert "iu:update" not in grants.grants
    assert set(grants.grants) == set(REQUIRED_GRANTS) - {"iu:update"}


@pytest.mark.subprocess
async def test_an_extra_privilege_shows_in_the_probe(pg_db: PgDatabase) -> None:
    await admin_execute(pg_db.admin_dsn, "GRANT UPDATE ON ledger TO cutter_writer")
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    try:
        grants = await PgGrantProbe(pool).writer_grants()
    finally:
        await pool.close()
    assert set(grants.grants) == {*REQUIRED_GRANTS, "ledger:update"}


# == KillSwitch =======================================================================


@pytest.fixture
async def writer_pool(pg_db: PgDatabase) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.mark.subprocess
async def test_the_kill_switch_is_released_after_migrate_and_engages_and_releases(
    pg_db: PgDatabase, writer_pool: asyncpg.Pool
) -> None:
    control = await create_pool(pg_db.control_dsn, role="cutter_control", min_size=0)
    try:
        await engage_and_release(pg_db, PgKillSwitch(writer_pool, control))
    finally:
        await control.close()


async def engage_and_release(pg_db: PgDatabase, switch: PgKillSwitch) -> None:
    assert await switch.engaged() is False
    await switch.engage("maintenance window")
    assert await switch.engaged() is True
    row = (await admin_fetch(pg_db.admin_dsn, "SELECT engaged, reason FROM kill_switch"))[0]
    assert (row["engaged"], row["reason"]) == (True, "maintenance window")
    await switch.engage("again")  # idempotent
    assert await switch.engaged() is True
    await switch.release()
    assert await switch.engaged() is False
    await switch.release()
    assert await switch.engaged() is False
    assert await admin_fetchval(pg_db.admin_dsn, "SELECT count(*) FROM kill_switch") == 1


@pytest.mark.subprocess
async def test_the_kill_switch_is_engaged_when_its_pool_is_closed(pg_db: PgDatabase) -> None:
    pool = await create_pool(pg_db.writer_dsn, role=WRITER, min_size=0)
    switch = PgKillSwitch(pool)
    assert await switch.engaged() is False
    await pool.close()
    assert await switch.engaged() is True


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("DROP TABLE kill_switch", id="table-dropped"),
        pytest.param("REVOKE SELECT ON kill_switch FROM cutter_writer", id="no-select"),
        pytest.param("DELETE FROM kill_switch", id="row-missing"),
        pytest.param(
            "ALTER TABLE kill_switch ALTER COLUMN engaged DROP NOT NULL;"
            " UPDATE kill_switch SET engaged = NULL",
            id="null",
        ),
    ],
)
@pytest.mark.subprocess
async def test_the_kill_switch_fails_closed_when_its_state_cannot_be_read(
    pg_db: PgDatabase, writer_pool: asyncpg.Pool, statement: str
) -> None:
    switch = PgKillSwitch(writer_pool)
    assert await switch.engaged() is False
    await admin_execute(pg_db.admin_dsn, statement)
    assert await switch.engaged() is True


# == Document locks ===================================================================


@pytest.fixture
def locks(backend: Backend) -> InProcessDocumentLocks | PgDocumentLocks:
    if backend.kind != "pg":  # the embedded stores use the in-process locks
        return InProcessDocumentLocks()
    return PgDocumentLocks(backend.pg.writer_dsn)


async def test_a_held_document_is_busy_for_another_run_and_free_after(
    locks: InProcessDocumentLocks | PgDocumentLocks,
) -> None:
    async with locks.hold("doc-1", "run-alpha"):
        with pytest.raises(DocumentBusy) as caught:
            async with locks.hold("doc-1", "run-beta"):
                pytest.fail("a second run held a busy document")
        assert caught.value.doc_id == "doc-1"
        assert "run-alpha" in caught.value.holder
        assert "run-alpha" in str(caught.value)
        assert "run-beta" not in str(caught.value)
        assert caught.value.code == "STOP_DOCUMENT_BUSY"
        async with locks.hold("doc-2", "run-beta"):
            pass  # another document is free
    async with locks.hold("doc-1", "run-beta"):
        pass  # free again once the first run let go


async def test_a_lock_is_released_when_its_holder_raises(
    locks: InProcessDocumentLocks | PgDocumentLocks,
) -> None:
    with pytest.raises(RuntimeError, match="phase failed"):
        async with locks.hold("doc-1", "run-alpha"):
            raise RuntimeError("phase failed")
    async with locks.hold("doc-1", "run-beta"):
        pass


async def _holder_pid(admin_dsn: str, run_id: str) -> int:
    rows = await admin_fetch(
        admin_dsn,
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
        f"iu-cutter {run_id}",
    )
    assert len(rows) == 1, rows
    return int(rows[0]["pid"])


@pytest.mark.subprocess
async def test_document_busy_names_the_holders_session_and_pid(pg_db: PgDatabase) -> None:
    locks = PgDocumentLocks(pg_db.writer_dsn)
    async with locks.hold("doc-1", "run-alpha"):
        pid = await _holder_pid(pg_db.admin_dsn, "run-alpha")
        with pytest.raises(DocumentBusy) as caught:
            async with locks.hold("doc-1", "run-beta"):
                pytest.fail("a second run held a busy document")
    message = str(caught.value)
    assert "iu-cutter run-alpha" in message
    assert re.search(rf"\bpid {pid}\b", message), message


@pytest.mark.subprocess
async def test_two_processes_worth_of_stores_share_the_lock(pg_db: PgDatabase) -> None:
    """Two lock objects (as two processes would have) see each other's locks."""
    mine, theirs = PgDocumentLocks(pg_db.writer_dsn), PgDocumentLocks(pg_db.admin_dsn)
    async with mine.hold("doc-1", "run-alpha"):
        with pytest.raises(DocumentBusy, match="run-alpha"):
            async with theirs.hold("doc-1", "run-beta"):
                pytest.fail("a second run held a busy document")


@pytest.mark.subprocess
async def test_a_lock_dies_with_its_connection(pg_db: PgDatabase) -> None:
    locks = PgDocumentLocks(pg_db.writer_dsn)
    reacquired = False
    with contextlib.suppress(StoreUnavailable):  # the holder may learn it lost its session
        async with locks.hold("doc-1", "run-alpha"):
            pid = await _holder_pid(pg_db.admin_dsn, "run-alpha")
            with pytest.raises(DocumentBusy):
                async with locks.hold("doc-1", "run-beta"):
                    pytest.fail("a second run held a busy document")
            # Waits (up to 5 s) until the backend is gone, and with it its locks.
            assert await admin_fetchval(
                pg_db.admin_dsn, "SELECT pg_terminate_backend($1, 5000)", pid
            )
            async with locks.hold("doc-1", "run-beta"):
                reacquired = True  # free although the first holder never let go
    assert reacquired
