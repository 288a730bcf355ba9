"""``cutter runs``: one page of the run list, or every page with ``--all``.

A page is what one ``runs`` frame answers (``cutter.core.run_pages``): at most
``--limit`` runs in run id order. Below a page that is not the last, the command
that prints the next one; ``--all`` follows the cursors itself, on one
connection. With ``--json`` each page is its reply frame, one line.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from cutter.cli.connect import DEFAULT_SOCKET, Endpoint, daemon_options, expect
from cutter.cli.render import console, runs_table
from cutter.core.protocol import RUNS_DEFAULT_LIMIT, RUNS_MAX_LIMIT, ListRuns, RunList
from cutter.core.states import RunState
from cutter.daemon.client import Client


@click.command()
@daemon_options
@click.option(
    "--state",
    type=click.Choice([s.value for s in RunState], case_sensitive=False),
    default=None,
    help="Only runs in this state.",
)
@click.option("--doc", "doc_id", default=None, help="Only runs of this document.")
@click.option(
    "--limit",
    type=click.IntRange(1, RUNS_MAX_LIMIT),
    default=RUNS_DEFAULT_LIMIT,
    show_default=True,
    help=f"Runs per page (at most {RUNS_MAX_LIMIT}).",
)
@click.option("--cursor", default=None, help="Go on after a page: the cursor it printed.")
@click.option("--all", "every", is_flag=True, help="Every page, following the cursors.")
def runs(
    socket_path: Path,
    as_json: bool,
    state: str | None,
    doc_id: str | None,
    limit: int,
    cursor: str | None,
    every: bool,
) -> None:
    """The runs the daemon knows, a page at a time: state, waiting gate, stop code."""
    target = Endpoint(socket_path, as_json)
    chosen = None if state is None else RunState(state.upper())

    def ask(after: str | None) -> ListRuns:
        return ListRuns(state=chosen, doc_id=doc_id, limit=limit, cursor=after)

    async def pages(client: Client) -> None:
        after = cursor
        while True:
            reply = expect(await client.request(ask(after)), RunList)
            show(reply, first=after == cursor)
            after = reply.next_cursor
            if after is None or not every:
                return

    def show(reply: RunList, *, first: bool) -> None:
        if as_json:
            target.frame(reply)
            return
        if reply.runs:
            console().print(runs_table(reply.runs))
        elif first:
            click.echo(_none(chosen, doc_id))
        for bad in reply.unreadable:  # quarantined: `cutter doctor` says more
            click.echo(f"UNREADABLE {bad.run_id}: {bad.code}: {bad.reason}")
        if reply.next_cursor is not None and not every:
            click.echo(f"{len(reply.runs)} runs; the next page: {_next(reply.next_cursor)}")

    def _next(next_cursor: str) -> str:
        words = ["cutter", "runs"]
        if chosen is not None:
            words += ["--state", chosen.value]
        if doc_id is not None:
            words += ["--doc", doc_id]
        if limit != RUNS_DEFAULT_LIMIT:
            words += ["--limit", str(limit)]
        if socket_path != DEFAULT_SOCKET:
            words += ["--socket", str(socket_path)]
        return shlex.join([*words, "--cursor", next_cursor])

    target.call(pages)


def _none(state: RunState | None, doc_id: str | None) -> str:
    where = [f"in state {state.value}"] if state is not None else []
    where += [f"of {doc_id}"] if doc_id is not None else []
    return " ".join(["no runs", *where])


COMMANDS: tuple[click.Command, ...] = (runs,)
