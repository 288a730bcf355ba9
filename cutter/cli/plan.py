"""``cutter plan FILE``: the units a cut would make, without starting a run.

An operator checks a document before cutting it: ordinal, label, normalised
number, structure path, byte range, size, region sha prefix, and the
discoverer's warnings. ``--json`` prints the same as one JSON object. A binary
or UTF-16/32 file is refused (``E_DOCUMENT_NOT_TEXT``, exit 1).

The cut shown is the one a run's mark and cutplan phases record and leg A
writes: the same ``TextDiscoverer`` (``discover(data)``, the inferred profile)
and the same ``build_manifest``. There is no profile to choose, because a run
cannot be given one: a plan cut with another profile would show a reviewer
units that no run makes.
"""

from __future__ import annotations

from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cutter.core.canonical import sha256_hex
from cutter.core.records import Manifest, SourceVersion


class PlanReport(msgspec.Struct, frozen=True, kw_only=True):
    file: str
    profile: str
    size: int
    sha256: str
    manifest: Manifest
    warnings: tuple[str, ...]


def plan_file(path: Path, data: bytes) -> PlanReport:
    from cutter.core.ids import default_sd_id
    from cutter.core.plan import build_manifest
    from cutter.discovery import TextDiscoverer
    from cutter.discovery.content import require_text

    require_text(data)  # binary or UTF-16/32: E_DOCUMENT_NOT_TEXT
    found = TextDiscoverer().explain(data)
    doc_id = "plan"
    version = SourceVersion(
        doc_id=doc_id,
        sd_id=default_sd_id(doc_id),
        sv_id="sv-plan",
        sha256=sha256_hex(data),
        size=len(data),
    )
    return PlanReport(
        file=str(path),
        profile=found.profile,
        size=len(data),
        sha256=version.sha256,
        manifest=build_manifest(version, data, found.candidates),
        warnings=found.warnings,
    )


def show(report: PlanReport) -> None:
    console = Console()
    table = Table(title=f"{report.file}: {len(report.manifest.ius)} units ({report.profile})")
    table.add_column("#", justify="right", no_wrap=True, min_width=3)
    table.add_column("label", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("number", no_wrap=True, min_width=6)
    table.add_column("structure", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("bytes", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True, min_width=6)
    table.add_column("region_sha", no_wrap=True)
    for iu in report.manifest.ius:
        table.add_row(
            str(iu.ordinal),
            escape(iu.label) if iu.kind == "unit" else escape(f"[{iu.kind}]"),
            iu.number or "",
            escape(" > ".join(iu.path)),
            f"{iu.start}-{iu.end}",
            str(iu.end - iu.start),
            iu.region_sha[:12],
        )
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def plan(path: Path, as_json: bool) -> None:
    """Show the units a cut of FILE would make, without starting a run."""
    from cutter.core.doc_size import read_document
    from cutter.core.errors import CutterError

    try:
        report = plan_file(path, read_document(path))  # E_DOCUMENT_TOO_LARGE
    except CutterError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
    else:
        show(report)


COMMANDS: tuple[click.Command, ...] = (plan,)
