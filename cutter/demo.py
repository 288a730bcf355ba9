"""``cutter demo``: cut the bundled sample charter end to end — on the embedded
stores, or on PostgreSQL with ``--dsn`` — approving both gates with a scripted
reviewer and printing each transition. A live demo ends by verifying the ledger
against every run's anchor, as ``cutter verify-ledger`` does.

On the embedded stores the sources and IU rows are in memory (each demo starts
afresh), while the KB, the sidecars and the ledger are files under the state
directory: the ledger persists with the anchors that name its entries, so
``cutter verify-ledger --state-dir .cutter-demo`` checks every live demo run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import click
from rich.console import Console
from rich.table import Table

from cutter.anchoring import verify_ledger
from cutter.anchors import describe
from cutter.discovery import TextDiscoverer
from cutter.kbdocs import Approval, Decision
from cutter.mode import Mode, enable_execution
from cutter.phases.context import load_manifest
from cutter.ports import LedgerReader, Target
from cutter.runner import Runner, RunnerConfig, utc_now
from cutter.sidecar import Sidecar
from cutter.stores.file_ledger import FileLedger
from cutter.stores.files import FileKillSwitch, FileKnowledgeBase, FileRunStore
from cutter.stores.memory_target import InMemoryIUStore, InMemorySources, StaticGrantProbe
from cutter.stores.owner import claim
from cutter.walk import Gate

DOC_ID = "garden-charter"
OPERATOR = "demo-operator"
REVIEWER = "demo-reviewer"


def sample_bytes() -> bytes:
    return resources.files("cutter").joinpath("samples/garden-charter.md").read_bytes()


@asynccontextmanager
async def embedded(state_dir: Path) -> AsyncIterator[tuple[RunnerConfig, str]]:
    """The demo's stores. It owns ``state_dir`` first, as a daemon does: its runs and
    KB docs are files there, which a daemon on the same directory would write too."""
    with await anyio.to_thread.run_sync(claim, state_dir, "cutter demo"):
        sources = InMemorySources()
        sources.publish(DOC_ID, sample_bytes(), sv_id=f"{DOC_ID}-v1")
        kb = FileKnowledgeBase(state_dir / "kb")
        yield (
            RunnerConfig(
                target=Target(
                    sources=sources,
                    ius=InMemoryIUStore(),
                    ledger=FileLedger(state_dir / "target" / "ledger"),
                ),
                kb=kb,
                run_store=FileRunStore(state_dir / "runs"),
                discoverer=TextDiscoverer(),
                grants=StaticGrantProbe(),
                kill_switch=FileKillSwitch(state_dir / "kill-switch"),
            ),
            f"files under {kb.root}",
        )


@asynccontextmanager
async def on_postgres(dsn: str) -> AsyncIterator[tuple[RunnerConfig, str]]:
    """Migrate, create the roles, publish the sample (a fresh edition of it when an
    earlier live demo cut it), and act as the writer role."""
    from cutter.pg.connect import connect
    from cutter.pg.migrate import migrate
    from cutter.pg.roles import create_roles
    from cutter.pg.stores import pg_config

    await migrate(dsn)
    await create_roles(dsn)
    conn = await connect(dsn)
    try:
        await publish_uncut(conn)
    finally:
        await conn.close()
    async with pg_config(dsn, TextDiscoverer()) as config:
        yield config, "rows of the kb_docs table"


def sample_edition(edition: int) -> bytes:
    """The sample, or from the second edition on the sample with a trailing comment
    naming the edition: bytes of their own, so a new source version to cut."""
    if edition <= 1:
        return sample_bytes()
    return sample_bytes() + f"\n<!-- demo edition {edition} -->\n".encode()


async def publish_uncut(conn: Any) -> str:
    """Make the first edition of the sample that no earlier live demo cut the current
    version (a version is cut once: ``STOP_ALREADY_CUT``), so the demo runs again on
    the same database. The version id, as ``publish`` returns it."""
    from cutter.pg.queries import CUT_BY
    from cutter.pg.target import publish

    edition = 1
    while True:
        version = await publish(conn, DOC_ID, sample_edition(edition))
        if await conn.fetchval(CUT_BY, version.sv_id) is None:
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
    click.echo(f"KB docs of this run: runs/{sidecar.run_id}/… in {where}")
    if report is not None:
        click.echo("\nthe ledger against every run's anchor (cutter verify-ledger):")
        for line in describe(report):
            click.echo(f"  {line}")
    return sidecar, report is None or report.ok


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
