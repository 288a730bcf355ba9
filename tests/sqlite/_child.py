"""A second process on one embedded database, for the tests of ``tests/sqlite``.

``python -m tests.sqlite._child COMMAND DB [ARGS]`` prints one line per step it has
taken (flushed), so the test knows where the process stands without a timer, and
waits for a line on stdin wherever it must start together with another process.
Commands:

- ``acks DB``: write ``kb_docs`` rows ``ack/0``, ``ack/1``, … one write each, printing
  ``ack N`` after each write returned (the test SIGKILLs it).
- ``midbatch DB N``: N acknowledged writes (``kept/0`` …), then a write that inserts
  ``lost/0``, prints ``in-batch`` from inside the batch (in the writer thread) and
  blocks there for ever (the test SIGKILLs it).
- ``hold DB``: a raw connection holds an open write transaction (``BEGIN IMMEDIATE``)
  after printing ``locked``, until a line arrives on stdin.
- ``consume DB RUN APPROVAL``: ``ready``, waits for a line, then consumes the approval
  for RUN with ``SqliteRunStore.save_consuming``; prints ``won`` or ``lost CODE``.
- ``append DB TAG N``: ``ready``, waits for a line, then appends N distinct ledger
  entries; prints ``done``.
- ``open DB``: ``ready``, waits for a line, then opens (and so migrates) the
  database; prints ``opened``.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path

import anyio
import msgspec

from cutter.core.errors import CutterError
from cutter.core.ledger import CutEnvelope
from cutter.stores.sqlite.database import open_database, open_now
from cutter.stores.sqlite.records import SqliteRunStore
from cutter.stores.sqlite.target import SqliteLedger
from tests._harness import paused_sidecar
from tests.pg._stores import approval_use


def say(line: str) -> None:
    print(line, flush=True)


def insert(kb_id: str) -> object:
    return lambda c: c.execute("INSERT INTO kb_docs (kb_id, doc) VALUES (?, ?)", (kb_id, b"{}"))


async def acks(db_path: Path) -> None:
    async with open_database(db_path) as db:
        n = 0
        while True:
            await db.write(insert(f"ack/{n}"))  # type: ignore[arg-type]
            say(f"ack {n}")
            n += 1


async def midbatch(db_path: Path, count: int) -> None:
    async with open_database(db_path) as db:
        for n in range(count):
            await db.write(insert(f"kept/{n}"))  # type: ignore[arg-type]
        say("kept")

        def stuck(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO kb_docs (kb_id, doc) VALUES ('lost/0', x'7b7d')")
            say("in-batch")
            threading.Event().wait()

        await db.write(stuck, bulk=True)  # in the worker thread, as a batch


def hold(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO kb_docs (kb_id, doc) VALUES ('held/0', x'7b7d')")
    say("locked")
    sys.stdin.readline()
    conn.rollback()
    conn.close()


async def consume(db_path: Path, run_id: str, approval: str) -> None:
    async with open_database(db_path) as db:
        sidecar = msgspec.structs.replace(paused_sidecar(run_id), doc_id=f"doc-of-{run_id}")
        await SqliteRunStore(db).create(sidecar)  # a save never creates a run
        say("ready")
        await anyio.to_thread.run_sync(sys.stdin.readline)
        advanced = msgspec.structs.replace(sidecar, revision=sidecar.revision + 1)
        try:
            await SqliteRunStore(db).save_consuming(advanced, approval_use(approval))
        except CutterError as exc:
            say(f"lost {exc.code}")
        else:
            say("won")


async def append(db_path: Path, tag: str, count: int) -> None:
    async with open_database(db_path) as db:
        ledger = SqliteLedger(db)
        say("ready")
        await anyio.to_thread.run_sync(sys.stdin.readline)
        async with anyio.create_task_group() as tg:
            for n in range(count):
                envelope = CutEnvelope(
                    run_id=f"run-{tag}-{n}",
                    doc_id="doc-1",
                    sv_id="sv-1",
                    change_set_id=f"cs-{tag}-{n}",
                    manifest_digest="0123456789abcdef" * 4,
                    iu_count=n + 1,
                )
                tg.start_soon(ledger.append, envelope)
        say("done")


def open_it(db_path: Path) -> None:
    say("ready")
    sys.stdin.readline()
    open_now(db_path).close()
    say("opened")


def main(argv: list[str]) -> None:
    command, db_path, args = argv[0], Path(argv[1]), argv[2:]
    if command == "acks":
        anyio.run(acks, db_path)
    elif command == "midbatch":
        anyio.run(midbatch, db_path, int(args[0]))
    elif command == "hold":
        hold(db_path)
    elif command == "consume":
        anyio.run(consume, db_path, args[0], args[1])
    elif command == "append":
        anyio.run(append, db_path, args[0], int(args[1]))
    elif command == "open":
        open_it(db_path)
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
