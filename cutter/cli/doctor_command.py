"""``cutter doctor``: report every damaged record (``cutter.cli.doctor``); exit 1 if any."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from cutter.cli.common import run_command, store_options


@click.command("doctor")
@store_options("The embedded stores' directory (ignored with --dsn).")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
def doctor(state_dir: Path, dsn: str | None, as_json: bool) -> None:
    """Read every run, KB doc, gate request, approval, the policy, the consumed
    approvals, the ledger and the database file itself; name each damaged record.
    Read-only: it may run beside a daemon that owns the state directory. Exit
    status 1 when anything is damaged."""
    from cutter.cli.doctor import describe_report, examine_stores

    report = run_command(examine_stores, state_dir, dsn)
    if as_json:
        data = {"ok": report.ok, **msgspec.to_builtins(report)}
        click.echo(msgspec.json.encode(data).decode())
    else:
        for line in describe_report(report):
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)


COMMANDS: tuple[click.Command, ...] = (doctor,)
