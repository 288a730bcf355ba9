"""``cutter demo``: cut the bundled sample charter end to end — on the embedded
stores, or on PostgreSQL with ``--dsn`` — approving both gates with a scripted
reviewer and printing each transition. A live demo ends by verifying the ledger
against every run's anchor, as ``cutter verify-ledger`` does.

On the embedded default everything — the sample's source versions, the IU rows,
the ledger, the KB docs and the runs — is in the SQLite database
``<state-dir>/cutter.sqlite3``, which persists: ``cutter verify-ledger
--state-dir .cutter-demo`` checks every live demo run, ``cutter doctor`` every
record, and any SQLite tool opens the file. A live demo cuts its source version
once (``STOP_ALREADY_CUT`` after), so each demo publishes the first edition of the
sample that no earlier demo cut, on either store."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread
import click
from rich.console import Console
from rich.table import Table

from cutter.assembly.embedded import check_layout, embedded_config
from cutter.core.anchors import describe
from cutter.core.kbdocs import Approval, Decision
from cutter.core.mode import Mode, enable_execution
from cutter.core.ports import LedgerReader, SourcePublisher, SourceRepository
from cutter.core.route import Gate
from cutter.core.sidecar import Sidecar
from cutter.core.state_dir import StateDir
from cutter.discovery import TextDiscoverer
from cutter.stores.owner import claim
from cutter.stores.sqlite.target import SqliteSources
from cutter.walk.anchoring import verify_ledger
from cutter.walk.phases.context import load_manifest
from cutter.walk.runner import Runner, RunnerConfig, utc_now

DOC_ID = "garden-charter"
OPERATOR = "demo-operator"
REVIEWER = "demo-reviewer"


def sample_bytes() -> bytes:
    return resources.files("cutter").joinpath("samples/garden-charter.md").read_bytes()


@asynccontextmanager
async def embedded(state_dir: Path) -> AsyncIterator[tuple[RunnerConfig, str]]:
    """The demo's database. It owns ``state_dir`` first, as a daemon does: a daemon
    on the same directory would walk the demo's runs too."""
    check_layout(state_dir)
    with await anyio.to_thread.run_sync(claim, state_dir, "cutter demo"):
        async with embedded_config(state_dir) as config:
            sources = config.target.sources
            assert isinstance(sources, SqliteSources)
            await publish_uncut(sources)
            yield config, str(StateDir(state_dir).database)


@asynccontextmanager
async def on_postgres(dsn: str) -> AsyncIterator[tuple[RunnerConfig, str]]:
    """Migrate, create the roles, publish the sample (a fresh edition of it when an
    earlier live demo cut it), and act as the writer role."""
    from cutter.assembly.postgres import pg_config
    from cutter.stores.pg.connect import connect
    from cutter.stores.pg.migrate import migrate
    from cutter.stores.pg.roles import create_roles

    await migrate(dsn)
    await create_roles(dsn)
    from cutter.stores.pg.target import PgSourceRepository

    conn = await connect(dsn)
    try:
        await publish_uncut(PgSourceRepository(conn))
    finally:
        await conn.close()
    async with pg_config(dsn, TextDiscoverer()) as config:
        yield config, ""


def sample_edition(edition: int) -> bytes:
    """The sample, or from the second edition on the sample with a trailing comment
    naming the edition: bytes of their own, so a new source version to cut."""
    if edition <= 1:
        return sample_bytes()
    return sample_bytes() + f"\n<!-- demo edition {edition} -->\n".encode()


class _Sources(SourceRepository, SourcePublisher, Protocol):
    pass


async def publish_uncut(sources: _Sources) -> str:
    """Make the first edition of the sample that no earlier live demo cut the current
    version (a version is cut once: ``STOP_ALREADY_CUT``), so the demo runs again on
    the same database. The version id, as ``publish`` returns it."""
    edition = 1
    while True:
        version = await sources.publish(DOC_ID, sample_edition(edition))
        if await sources.cut_by(version.sv_id) is None:
            return version.sv_id
        edition += 1


async def run_demo(state_dir: Path, live: bool, dsn: str | None) -> tuple[Sidecar, bool]:
    """Walk the sample through both gates; the run's sidecar at its end, and whether
    the ledger verified against every anchor (True for a dry run, which writes none)."""
    if live:
        enable_execution()  # the operator asked for it with --live
    mode = Mode.LIVE if live else Mode.DRY_RUN
    stores = embedded(state_dir) if dsn is None else on_postgres(dsn)
    async with stores as (config, where), Runner(config) as runner:
        click.echo(
            f"cutting {DOC_ID} ({mode.value}) on {'PostgreSQL' if dsn else 'embedded stores'}"
        )
        sidecar = await runner.cut(DOC_ID, mode, started_by=OPERATOR)
        while sidecar.pending_gate is not None:
            sidecar = await runner.resume(sidecar.run_id, await approve(config, sidecar))
        manifest = await load_manifest(config.kb, sidecar)
        active = [r for r in await config.target.ius.rows(DOC_ID) if r.state == "active"]
        ledger = config.target.ledger
        report = None
        if live and isinstance(ledger, LedgerReader):
            report = await verify_ledger(ledger, config.kb)
    click.echo(f"\nrun {sidecar.run_id} ended {sidecar.state.value}")
    if sidecar.stop is not None:
        click.echo(f"  {sidecar.stop.code.value}: {sidecar.stop.message}")
    if manifest is not None:
        table = Table("#", "label", "kind", "bytes", "region_sha", title="information units")
        for iu in manifest.ius:
            table.add_row(
                str(iu.ordinal), iu.label, iu.kind, f"{iu.start}-{iu.end}", iu.region_sha[:12]
            )
        Console().print(table)
    if live:
        click.echo(f"\n{len(active)} IUs of {DOC_ID} are active in the target store")
    else:
        click.echo("\ndry run: nothing was committed to the target store (use --live to commit)")
    if where:
        look_in_sqlite(sidecar, where)
    else:
        click.echo(f"KB docs of this run: runs/{sidecar.run_id}/… in the kb_docs table")
    if report is not None:
        click.echo("\nthe ledger against every run's anchor (cutter verify-ledger):")
        for line in describe(report):
            click.echo(f"  {line}")
    return sidecar, report is None or report.ok


def look_in_sqlite(sidecar: Sidecar, path: str) -> None:
    """Where a person looks: the database file, with any SQLite tool."""
    run = sidecar.run_id
    click.echo(f"everything of this run is in the SQLite database {path}; for instance:")
    path = shlex.quote(path)
    click.echo(f"  sqlite3 {path} \"SELECT kb_id FROM kb_docs WHERE kb_id LIKE 'runs/{run}/%'\"")
    click.echo(f"  sqlite3 {path} \"SELECT state FROM runs WHERE run_id = '{run}'\"")
    if sidecar.mode is Mode.LIVE:  # a dry run's units stay in its sandbox: none stored
        query = f"SELECT ordinal, label, state FROM ius WHERE doc_id = '{DOC_ID}'"
        click.echo(f'  sqlite3 {path} "{query}"')
    state_dir = Path(path).parent
    click.echo(
        f"a daemon on it (cutter daemon --state-dir {state_dir}) lists the runs (cutter runs);"
        " cutter review RUN shows what a gate authorises while a run waits there"
    )


async def approve(config: RunnerConfig, sidecar: Sidecar) -> str:
    """The scripted reviewer: answer exactly the request the run waits on."""
    gate = sidecar.pending_gate
    assert gate is not None
    approval_id = f"approvals/{sidecar.run_id}/{gate.gate.value}"
    await config.kb.put(
        approval_id,
        Approval(
            run_id=sidecar.run_id,
            gate=gate.gate,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            decision=Decision.APPROVE,
            approver=REVIEWER,
            reason="scripted approval of the demo",
            issued_at=utc_now(),
            review_decision_id=f"review-{sidecar.run_id}" if gate.gate is Gate.SG_2 else None,
        ),
    )
    click.echo(f"  {REVIEWER} approves {gate.gate.value}: {approval_id}")
    return approval_id
