"""``cutter verify-ledger``: the ledger's chain and every run's anchor, checked.

Reads the stores directly (no daemon needed; a running daemon may go on
writing): the ``ledger`` and ``kb_docs`` tables of the database under
``--state-dir``, or at ``--dsn`` (a reader's login is enough). Prints what holds
and, run by run, every anchored entry that is missing or changed; exits 1 when
anything is wrong. Design and limits: docs/ledger.md §8.
"""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from cutter.cli.common import run_command, store_options
from cutter.core.anchors import LedgerReport, describe


async def verify_stores(state_dir: Path, dsn: str | None) -> LedgerReport:
    from cutter.walk.anchoring import verify_ledger

    if dsn is None:
        from cutter.assembly.embedded import open_state_dir
        from cutter.stores.sqlite.records import SqliteKnowledgeBase
        from cutter.stores.sqlite.target import SqliteLedger

        async with open_state_dir(state_dir) as db:
            return await verify_ledger(SqliteLedger(db), SqliteKnowledgeBase(db))
    from cutter.stores.pg.connect import create_pool
    from cutter.stores.pg.records import PgKnowledgeBase
    from cutter.stores.pg.target import PgLedger

    pool = await create_pool(dsn, min_size=0, max_size=1)
    try:
        return await verify_ledger(PgLedger(pool), PgKnowledgeBase(pool))
    finally:
        await pool.close()


@click.command("verify-ledger")
@store_options("The embedded stores' directory (ignored with --dsn).")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
def verify_ledger(state_dir: Path, dsn: str | None, as_json: bool) -> None:
    """Check the ledger's hash chain and, against it, the anchor every live run
    recorded for its cut, revert and rollback: name each run whose entry is missing or
    changed. Exit status 1 when anything is wrong."""
    report = run_command(verify_stores, state_dir, dsn)
    if as_json:
        data = {"ok": report.ok, **msgspec.to_builtins(report)}
        click.echo(msgspec.json.encode(data).decode())
    else:
        for line in describe(report):
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)


COMMANDS: tuple[click.Command, ...] = (verify_ledger,)
