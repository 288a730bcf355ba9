"""A live revert of a closed-out cut (``Runner.revert``, walked through SG_1 and SG_2
to CLOSEOUT_REPORTED with scripted approvals) on the embedded database with
durability on, against its floor: the least work any revert must do, done directly
on the same database, measured in the same run, interleaved with the reverts.

What a revert reverts is set up before any clock, through real runs: a document is
published and cut live, then a second version is published and cut live (both
gates each), so the revert puts the first version's rows back over both versions'
rows, as a revert in production does. The floor acts on a document of its own set
up the same way, so both find the same rows, the same backup and a ledger of the
same length.

The floor (``floor_revert``), in the order a revert must do it: read the document's
current version and check it is the cut's; read its rows (the store's ``rows``) and
check they are what the cut left
(their snapshot id, which names the pre-restore backup, against the cut's
``rows_after``); read the backup to restore (``load_backup``, which checks it
hashes to its id); then ONE transaction: store the pre-restore backup (its
canonical bytes, hashed once for its id), delete the document's rows and insert
the backup's, set the version's cut mark from them, append one revert entry to
the ledger (head read, chain hash); then one durability barrier
(``Database.durable``: an ``fdatasync`` of the WAL). No actors, no runs, no KB
docs, no gates, no verify read-backs.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import Clocked, Figure, clocked, compared, embedded, publish, scratch_dir
from benchmarks.embedded import filesystem
from benchmarks.history import document
from benchmarks.walk import approve_and_resume, walk_through

if TYPE_CHECKING:
    from cutter.core.sidecar import Sidecar
    from cutter.stores.sqlite.database import Database
    from cutter.walk.runner import Runner, RunnerConfig

IUS = 12  # the walk figures' document
LARGE = 1000  # the history figure's document
TARGET = 3.0  # see docs/performance.md, "The revert floor"


def versions(units: int) -> tuple[bytes, bytes]:
    """Two versions of a ``units``-article document: the second differs in its last unit."""
    first = document(units)
    return first, first + b"\nA later edition.\n"


async def cut_twice(config: RunnerConfig, doc_id: str, units: int) -> Sidecar:
    """Set-up: ``doc_id`` published and cut live, then its next version published and
    cut live. Returns the second cut, closed out: what the revert reverts."""
    from cutter.core.mode import Mode

    first, second = versions(units)
    await publish(config, doc_id, first)
    await walk_through(config, doc_id, Mode.LIVE)
    await publish(config, doc_id, second)
    _, cut = await walk_through(config, doc_id, Mode.LIVE)
    return cut


async def revert_once(runner: Runner, config: RunnerConfig, cut: Sidecar) -> Clocked:
    """The revert of ``cut``, started, approved at both gates, to its closeout."""
    from cutter.core.mode import Mode
    from cutter.core.states import RunState

    with clocked() as clock:
        sc = await runner.revert(cut.run_id, Mode.LIVE, started_by="operator")
        sc = await approve_and_resume(runner, config, sc)
    assert sc.state is RunState.CLOSEOUT_REPORTED, (sc.state, sc.stop)
    return clock


READS = ("rows", "load_backup")  # each a pass over every row of the document or backup


@contextmanager
def counting_reads(ius: object) -> Iterator[Counter[str]]:
    """Count calls of ``READS`` on the ``ius`` store instance while the block runs."""
    counts: Counter[str] = Counter()

    def counting(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        async def read(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return await method(*args, **kwargs)

        return read

    for name in READS:
        setattr(ius, name, counting(name, getattr(ius, name)))
    try:
        yield counts
    finally:
        for name in READS:
            delattr(ius, name)  # the class's method again


async def floor_revert(config: RunnerConfig, cut: Sidecar) -> Clocked:
    """The least work of a revert of ``cut``, directly on the database (module docstring)."""
    from cutter.core.canonical import canonical, sha256_hex
    from cutter.core.codec import row_values
    from cutter.core.ledger import LedgerEntry, RevertEnvelope, decode_envelope, next_entry
    from cutter.core.records import Backup
    from cutter.core.restoring import active_of, cut_mark_after
    from cutter.core.route import Pin

    ius = config.target.ius
    db: Database = ius.db  # type: ignore[attr-defined]
    doc_id = cut.doc_id
    to_restore = str(cut.pins[Pin.BACKUP_ID])
    left = str(cut.pins[Pin.ROWS_AFTER])
    sv_id = str(cut.pins[Pin.SOURCE_VERSION_ID])
    with clocked() as clock:
        version = await config.target.sources.current(doc_id)
        assert version.sv_id == sv_id, "a version was published since the cut"
        rows = await ius.rows(doc_id)
        data = canonical(Backup(doc_id=doc_id, rows=tuple(rows)))
        pre_restore = "bk-" + sha256_hex(data)[:32]
        assert pre_restore == left, "the rows are not what the cut left"
        backup = await ius.load_backup(to_restore)
        values = [row_values(r) for r in backup.rows]
        mark = cut_mark_after(backup.rows, sv_id)
        envelope = RevertEnvelope(
            run_id=f"floor-{cut.run_id}",
            doc_id=doc_id,
            sv_id=sv_id,
            change_set_id=f"cs-floor-{cut.run_id}",
            reverts=cut.run_id,
            backup_id=to_restore,
            pre_restore_backup_id=pre_restore,
            iu_count=len(active_of(backup.rows)),
        )

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO backups (backup_id, doc_id, payload) VALUES (?, ?, ?)",
                (pre_restore, doc_id, data),
            )
            conn.execute("DELETE FROM ius WHERE doc_id = ?", (doc_id,))
            conn.executemany(INSERT_IU, values)
            conn.execute("UPDATE source_versions SET cut_by = ? WHERE sv_id = ?", (mark, sv_id))
            seq, prev, entry_hash, stored = conn.execute(
                "SELECT seq, prev_hash, entry_hash, envelope FROM ledger ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            head = LedgerEntry(
                seq=seq,
                prev_hash=prev,
                entry_hash=entry_hash,
                envelope=decode_envelope(bytes(stored)),
            )
            entry = next_entry(head, envelope)
            encoded = canonical(envelope)
            conn.execute(
                "INSERT INTO ledger (seq, prev_hash, entry_hash, envelope, envelope_sha)"
                " VALUES (?, ?, ?, ?, ?)",
                (entry.seq, entry.prev_hash, entry.entry_hash, encoded, sha256_hex(encoded)),
            )

        await db.write(write, bulk=True)
        await db.durable()
    return clock


INSERT_IU = (
    "INSERT INTO ius (doc_id, sv_id, ordinal, iu_id, label, kind, start_byte, end_byte, "
    "region_sha, body, state, change_set_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def restored(config: RunnerConfig, cut: Sidecar) -> None:
    """The document's rows are the backup ``cut`` saved: the revert (or floor) did its work."""
    from cutter.core.records import Backup
    from cutter.core.route import Pin

    rows = await config.target.ius.rows(cut.doc_id)
    assert Backup(doc_id=cut.doc_id, rows=tuple(rows)).backup_id == cut.pins[Pin.BACKUP_ID]


async def measure(base: Path, repetitions: int, units: int) -> dict[str, Any]:
    from cutter.core.mode import enable_execution
    from cutter.core.route import Pin
    from cutter.walk.runner import Runner

    enable_execution()  # the cuts and the reverts are live
    reverts: list[Clocked] = []
    floors: list[Clocked] = []
    async with embedded(base / "state") as config:
        cuts = [await cut_twice(config, f"doc-{i}", units) for i in range(repetitions + 1)]
        floor_cuts = [await cut_twice(config, f"floor-{i}", units) for i in range(repetitions + 1)]
        ius = config.target.ius
        rows = (
            len(await ius.rows(cuts[0].doc_id)),
            len((await ius.load_backup(str(cuts[0].pins[Pin.BACKUP_ID]))).rows),
        )
        async with Runner(config) as runner:
            with counting_reads(ius) as reads:  # warm up (imports, statements), counted
                await revert_once(runner, config, cuts[0])
            with counting_reads(ius) as floor_reads:
                await floor_revert(config, floor_cuts[0])
            for cut, floor_cut in zip(cuts[1:], floor_cuts[1:], strict=True):
                reverts.append(await revert_once(runner, config, cut))  # interleaved: drift
                floors.append(await floor_revert(config, floor_cut))  # hits both alike
        for cut in [*cuts, *floor_cuts]:
            await restored(config, cut)
        verified = await config.target.ledger.verify()
    return {
        "reverts": reverts,
        "floors": floors,
        "rows": rows,
        "reads": (reads, floor_reads),
        "head": verified,
    }


def figure(name: str, units: int, got: dict[str, Any], where: str) -> Figure:
    reverts, floors = got["reverts"], got["floors"]
    before, after = got["rows"]  # both versions' rows; the first version's
    reads, floor_reads = got["reads"]

    def passes(counts: Counter[str]) -> str:
        return " + ".join(f"{counts[n]} {n}" for n in READS)

    def ms(samples: list[Clocked], what: str) -> float:
        return statistics.median(getattr(s, what) for s in samples) * 1e3

    return compared(
        name,
        "ms",
        [r.wall * 1e3 for r in reverts],
        [f.wall * 1e3 for f in floors],
        target=f"<= {TARGET:g}x the floor",
        limit=TARGET,
        note=(
            f"live revert of a closed-out cut (the second of two), {units:,} IUs, both gates, "
            f"embedded database, {where}: {before:,} rows back to {after:,}; floor: read "
            f"the rows and the backup, then one transaction (pre-restore backup, rows "
            f"deleted and inserted, cut mark, one ledger entry) and one WAL fdatasync "
            f"({ms(floors, 'wall'):.1f} ms wall, {ms(floors, 'cpu'):.1f} ms CPU); "
            f"CPU ratio {ms(reverts, 'cpu') / ms(floors, 'cpu'):.2f}x; passes over the rows: "
            f"revert {passes(reads)}, floor {passes(floor_reads)}"
        ),
        cpu=[r.cpu * 1e3 for r in reverts],
        floor_cpu=[f.cpu * 1e3 for f in floors],
    )


def run(repetitions: int, quick: bool) -> list[Figure]:
    import anyio

    figures = []
    for name, units in (("revert", IUS), ("revert-1k", LARGE)):
        with scratch_dir(name) as tmp:
            base = Path(tmp)
            got = anyio.run(measure, base, repetitions, units)
            where = filesystem(base)
        figures.append(figure(name, units, got, where))
    return figures
