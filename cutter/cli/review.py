"""``cutter review RUN``: what the gate a run waits at authorises, for a person.

The daemon answers the ``review`` command (``cutter.walk.gate_review``); this prints it:
the request, the units the cut makes, the discoverer's warnings and the diff
against the document's active IUs, and at SG_2 the verify results and the change
set lifecycle_enact makes active and retires. With ``--json`` the reply frame.
With ``--web`` it asks the daemon for a one-time link to decide the gate on the
review page as the caller's principal (``cutter.web``), and prints the link.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cutter.cli.connect import Endpoint, daemon_options
from cutter.cli.render import approve_hint, console, run_table
from cutter.core.protocol import MintLink, Review, ReviewLink, ReviewOf
from cutter.core.review import GateReview, Region, UnitChange, UnitDiff, UnitView


def units_table(title: str, units: Sequence[UnitView]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("label", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("number", no_wrap=True)
    table.add_column("structure", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("bytes", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("first line", no_wrap=True, overflow="ellipsis", max_width=48)
    for unit in units:
        table.add_row(
            str(unit.ordinal),
            escape(unit.label) if unit.kind == "unit" else escape(f"[{unit.kind}]"),
            unit.number or "",
            escape(" > ".join(unit.path)),
            f"{unit.start}-{unit.end}",
            str(unit.size),
            escape(unit.first_line),
        )
    return table


def regions_table(title: str, regions: Sequence[Region]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("#", "label", "size", "region_sha"):
        table.add_column(name, no_wrap=True, justify="right" if name in ("#", "size") else "left")
    for region in regions:
        table.add_row(
            str(region.ordinal), escape(region.label), str(region.size), region.region_sha[:12]
        )
    return table


def _change_line(kind: str, change: UnitChange) -> str:
    label = change.label if change.occurrence == 0 else f"{change.label} #{change.occurrence + 1}"
    where = {
        "added": f"at {change.after_ordinal}, {change.after_size} bytes",
        "removed": f"was at {change.before_ordinal}, {change.before_size} bytes",
        "changed": f"at {change.after_ordinal}, {change.before_size} -> {change.after_size} bytes",
        "moved": f"{change.before_ordinal} -> {change.after_ordinal}",
    }[kind]
    return f"  {kind:<8} {escape(label)} ({where})"


def print_diff(out: Console, diff: UnitDiff) -> None:
    out.print(
        f"against the active IUs: {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} changed, {len(diff.moved)} moved, {diff.unchanged} unchanged; "
        f"{diff.bytes_before} -> {diff.bytes_after} bytes"
    )
    if diff.added and not (diff.removed or diff.changed or diff.moved or diff.unchanged):
        out.print("  (a first cut: every unit above is added)")
        return
    for kind, changes in (
        ("added", diff.added),
        ("removed", diff.removed),
        ("changed", diff.changed),
        ("moved", diff.moved),
    ):
        for change in changes:
            out.print(_change_line(kind, change))


def print_review(out: Console, review: GateReview, *, restores: bool = False) -> None:
    """``restores``: the review of a restore run (docs/revert.md), whose enact puts
    a backup's rows back: nothing staged, in either mode."""
    out.print(
        f"{review.gate} authorises, for {review.doc_id} at {review.source_version_id} "
        f"({review.source_size} bytes, sha {review.source_sha[:16]}…):"
    )
    for note in review.notes:
        out.print(f"[bold]note:[/bold] {escape(note)}")
    out.print(units_table(f"{len(review.units)} units", review.units))
    if review.warnings:
        out.print(f"{len(review.warnings)} discovery warnings:")
        for warning in review.warnings:
            out.print(f"  {escape(warning)}")
    else:
        out.print("no discovery warnings")
    print_diff(out, review.diff)
    if review.verify or review.verify_result_id:
        out.print(f"verify results ({review.verify_result_id}):")
        for result in review.verify:
            out.print(f"  {result.phase}: {escape(result.note)}")
    if (change_set := review.change_set) is not None and restores:
        out.print(
            f"lifecycle_enact puts back {len(change_set.activate)} active rows from the "
            f"backup (a restore stages none) and retires {len(change_set.retire)} active rows"
        )
        if change_set.retire:
            out.print(regions_table("retired (superseded)", change_set.retire))
    elif change_set is not None:
        staged = "staged" if change_set.staged else "dry run: not written, as leg A would stage"
        out.print(
            f"lifecycle_enact makes {len(change_set.activate)} rows of {change_set.change_set_id} "
            f"active ({staged}) and retires {len(change_set.retire)} active rows"
        )
        if change_set.retire:
            out.print(regions_table("retired (superseded)", change_set.retire))


@click.command()
@daemon_options
@click.option(
    "--web",
    is_flag=True,
    help="Mint a one-time link to decide the open gate on the daemon's review page, "
    "as you (the daemon needs --http).",
)
@click.option(
    "--ttl-seconds",
    type=click.IntRange(min=0),
    default=None,
    hidden=True,  # shortens the daemon's --link-ttl; 0 mints an expired link (tests)
)
@click.argument("run_id")
def review(
    socket_path: Path, as_json: bool, web: bool, ttl_seconds: int | None, run_id: str
) -> None:
    """What the gate RUN_ID waits at authorises: units, warnings, diff (and at SG_2
    the verify results and the change set). With --web, a link to the review page
    where you may approve or reject it once, as yourself."""
    target = Endpoint(socket_path, as_json)
    if web:
        link = target.request(MintLink(run_id=run_id, ttl_seconds=ttl_seconds), ReviewLink)
        if as_json:
            target.frame(link)
            return
        click.echo(link.url)
        click.echo(
            f"decides {link.gate.value} of {link.run_id} (request {link.request_digest[:16]}…) "
            f"once, as {link.principal}, until {link.expires_at.isoformat()}; keep it private",
            err=True,
        )
        return
    reply = target.request(ReviewOf(run_id=run_id), Review)
    if as_json:
        target.frame(reply)
        return
    out = console()
    out.print(run_table(reply.run, full=True))
    print_review(out, reply.review, restores=reply.run.restore is not None)
    if hint := approve_hint(reply.run):
        out.print(hint)


COMMANDS: tuple[click.Command, ...] = (review,)
