"""``cutter demo``: cut the bundled sample charter end to end on the embedded
stores, approving both gates with a scripted reviewer, printing each transition."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from cutter.discovery import LineHeadingDiscoverer
from cutter.kbdocs import Approval, Decision
from cutter.mode import Mode, enable_execution
from cutter.phases.context import load_manifest
from cutter.ports import Target
from cutter.runner import Runner, RunnerConfig, utc_now
from cutter.sidecar import Sidecar
from cutter.stores.files import FileKillSwitch, FileKnowledgeBase, FileRunStore
from cutter.stores.memory_target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.walk import Gate

DOC_ID = "garden-charter"
OPERATOR = "demo-operator"
REVIEWER = "demo-reviewer"


def sample_bytes() -> bytes:
    return resources.files("cutter").joinpath("samples/garden-charter.md").read_bytes()


async def run_demo(state_dir: Path, live: bool) -> Sidecar:
    sources = InMemorySources()
    sources.publish(DOC_ID, sample_bytes(), sv_id=f"{DOC_ID}-v1")
    ius = InMemoryIUStore()
    kb = FileKnowledgeBase(state_dir / "kb")
    config = RunnerConfig(
        target=Target(sources=sources, ius=ius, ledger=InMemoryLedger()),
        kb=kb,
        run_store=FileRunStore(state_dir / "runs"),
        discoverer=LineHeadingDiscoverer(),
        grants=StaticGrantProbe(),
        kill_switch=FileKillSwitch(state_dir / "kill-switch"),
    )
    if live:
        enable_execution()  # the operator asked for it with --live
    mode = Mode.LIVE if live else Mode.DRY_RUN
    async with Runner(config) as runner:
        click.echo(f"cutting {DOC_ID} ({mode.value}) with state in {state_dir}")
        sidecar = await runner.cut(DOC_ID, mode, started_by=OPERATOR)
        while sidecar.pending_gate is not None:
            gate = sidecar.pending_gate
            approval_id = f"approvals/{sidecar.run_id}/{gate.gate.value}"
            await kb.put(
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
                    review_decision_id=f"review-{sidecar.run_id}"
                    if gate.gate is Gate.SG_2
                    else None,
                ),
            )
            click.echo(f"  {REVIEWER} approves {gate.gate.value}: {approval_id}")
            sidecar = await runner.resume(sidecar.run_id, approval_id)
        manifest = await load_manifest(kb, sidecar)
    click.echo(f"\nrun {sidecar.run_id} ended {sidecar.state.value}")
    if manifest is not None:
        table = Table("#", "label", "kind", "bytes", "region_sha", title="information units")
        for iu in manifest.ius:
            table.add_row(
                str(iu.ordinal), iu.label, iu.kind, f"{iu.start}-{iu.end}", iu.region_sha[:12]
            )
        Console().print(table)
    if live:
        active = [r for r in await ius.rows(DOC_ID) if r.state == "active"]
        click.echo(f"\n{len(active)} IUs active in the (in-memory) target store")
    else:
        click.echo("\ndry run: nothing was committed to the target store (use --live to commit)")
    click.echo(f"KB docs of this run: {kb.path_of(f'runs/{sidecar.run_id}/closeout').parent}")
    return sidecar
