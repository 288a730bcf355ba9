"""What the exit status of a client command says about the run it moved.

A script that runs ``cutter start DOC`` or ``scripts/approve RUN …`` must tell from the
status alone whether the run went where it was sent. The table (docs/protocol.md,
"Exit status", and ``cutter --help``):

    0    the daemon answered and the run advanced or ended as asked: it waits at a
         gate, is walking (``--no-wait``), ended CLOSEOUT_REPORTED, or ended the
         way the command asked (ABORTED for ``abort``, REJECTED for ``--reject``)
    1    refused: an ``error`` reply or a client-side refusal (``CODE: message``)
    2    no daemon answers on the socket (or a usage error, as click reports it)
    4    the daemon answered, but the run stopped: FAILED, REJECTED, ABORTED,
         HALTED or ROLLBACK_PENDING when the command did not ask for that
    130  ``watch`` interrupted with Ctrl-C

Commands that only read (``status``, ``runs``, ``review``) exit 0 whatever state
the run is in: reporting a failed run is what they were asked.
"""

from __future__ import annotations

import click

from cutter.core.protocol import RunSummary
from cutter.core.states import RunState

EXIT_STOPPED = 4  # the daemon answered; the run stopped somewhere the command did not send it

# Where a run stopped against the command's wish, unless the command asked for it.
STOPPED = frozenset(
    {
        RunState.FAILED,
        RunState.REJECTED,
        RunState.ABORTED,
        RunState.HALTED,
        RunState.ROLLBACK_PENDING,
    }
)

EXIT_STATUS_HELP = """\b
Exit status of start, resume, approve, abort (and scripts/approve):
  0    the run advanced or ended as asked: waiting at a gate, walking
       (--no-wait), CLOSEOUT_REPORTED, or ABORTED by abort / REJECTED by --reject
  1    refused: a typed error, CODE: message on stderr
  2    no daemon answers on the socket (click's usage errors are 2 too)
  4    the run stopped: FAILED, REJECTED, ABORTED, HALTED or ROLLBACK_PENDING
  130  watch interrupted with Ctrl-C
Every other command: 0 done, 1 refused, 2 no daemon or a usage error;
cutter daemon and cutter demo: 3 when another process owns the state directory."""


def exit_status(run: RunSummary, asked: RunState | None = None) -> int:
    """0 when ``run`` is where the command could send it (``asked``: the final
    state the command itself requested), ``EXIT_STOPPED`` when it stopped."""
    if run.state in STOPPED and run.state is not asked:
        return EXIT_STOPPED
    return 0


def finish(run: RunSummary, asked: RunState | None = None, *, as_json: bool = False) -> None:
    """End the command with the run's exit status; a stop is also said on stderr."""
    status = exit_status(run, asked)
    if status == 0:
        return
    if not as_json:
        stop = f" ({run.stop_code}: {run.stop_message})" if run.stop_code else ""
        click.echo(f"{run.run_id} stopped {run.state.value}{stop}", err=True)
    click.get_current_context().exit(status)
