"""The ``cutter`` command line."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import click
import structlog

from cutter.errors import CutterError
from cutter.logs import TRANSITION_EVENTS


def _transition_line(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
    name = event.pop("event")
    if name not in TRANSITION_EVENTS:
        raise structlog.DropEvent
    subject = event.pop("to_state", None) or event.pop("phase", None) or event.pop("gate", "")
    return f"  {name:<18} {subject}"


def configure_transitions() -> None:
    """Print one short line per run transition; drop everything else."""
    structlog.configure(
        processors=[_transition_line],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


@click.group()
def main() -> None:
    """Cut long knowledge-base documents into addressable information units, safely."""


@main.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".cutter-demo"),
    show_default=True,
    help="Where the KB docs and run sidecars are written.",
)
@click.option("--live", is_flag=True, help="Enable execution and commit to the embedded target.")
def demo(state_dir: Path, live: bool) -> None:
    """Cut the bundled sample charter through both gates with scripted approvals."""
    from cutter.demo import run_demo

    configure_transitions()
    try:
        sidecar = anyio.run(run_demo, state_dir, live)
    except CutterError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    if sidecar.stop_code is not None:
        sys.exit(1)
