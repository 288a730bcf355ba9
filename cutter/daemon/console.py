"""Where the daemon's log goes, and the short line a person reads on a terminal.

The JSON log (one event a line, every command) is for machines and for the file an
operator keeps; a person who runs ``cutter daemon`` in a terminal wants one short
line per run transition. The choice (docs/operations.md, "Logs"):

- ``--log FILE``: JSON lines to FILE; short lines on stderr when stderr is a terminal.
- no ``--log``, stdout a terminal: short lines on stdout, no JSON.
- no ``--log``, stdout not a terminal (a pipe, a supervisor's journal): JSON on stdout.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from cutter.runtime.logs import TRANSITION_EVENTS

# Not run transitions, but what a person at the terminal must see of the daemon itself.
DAEMON_EVENTS = frozenset(
    {
        "daemon_started",
        "daemon_draining",
        "daemon_stopped",
        "signal_received",
        "run_recovering",
        "run_unreadable",
        "kill_switch_set",
        "shutdown_requested",
        "policy_changed",
        "command_failed",
        "background_command_failed",
        "watcher_dropped",
    }
)
# Which fields of an event say what changed, in order (the rest stays in the JSON log).
_SUBJECT: dict[str, tuple[str, ...]] = {
    "phase_passed": ("phase",),
    "phase_failed": ("phase", "code", "error_id"),
    "gate_opened": ("gate",),
    "gate_closed": ("gate", "decision"),
    "approval_consumed": ("gate", "decision", "approver"),
    "approval_refused": ("gate", "code", "approver"),
    "drift_detected": ("gate",),
    "daemon_started": ("transport", "store", "http"),
    "signal_received": ("signal",),
    "run_recovering": ("run_id", "state"),
    "run_unreadable": ("run_id", "code", "reason"),
    "kill_switch_set": ("engaged", "principal"),
    "shutdown_requested": ("peer",),
    "policy_changed": ("version", "set_by"),
    "command_failed": ("id", "error_id"),
    "background_command_failed": ("what", "error_id"),
    "watcher_dropped": ("run_id", "reason"),
}


@dataclass(frozen=True, slots=True)
class Sinks:
    """``json``: the stream JSON lines go to (None: none); ``human``: short lines."""

    json: TextIO | None
    human: TextIO | None


def choose_sinks(log_file: TextIO | None, stdout: TextIO, stderr: TextIO) -> Sinks:
    """The default described above; ``log_file`` is the opened ``--log`` file."""
    if log_file is not None:
        return Sinks(json=log_file, human=stderr if _is_tty(stderr) else None)
    if _is_tty(stdout):
        return Sinks(json=None, human=stdout)
    return Sinks(json=stdout, human=None)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or an odd stream is no terminal
        return False


# A phase's start is implied by its pass or failure, which follows it: not repeated.
_QUIET = frozenset({"phase_started"})


def human_line(event: MutableMapping[str, Any], now: datetime | None = None) -> str | None:
    """One short line for a transition or a daemon event; None for everything else."""
    name = event.get("event")
    if name in _QUIET or (name not in TRANSITION_EVENTS and name not in DAEMON_EVENTS):
        return None
    at = (now or datetime.now(UTC)).strftime("%H:%M:%S")
    if name == "run_state_changed":
        what = f"{event.get('from_state')} -> {event.get('to_state')}"
        if event.get("stop_code"):
            what += f" ({event['stop_code']})"
    else:
        keys = _SUBJECT.get(str(name), ())
        what = " ".join(str(event[k]) for k in keys if event.get(k) is not None)
    run = event.get("run_id") if name in TRANSITION_EVENTS else None
    parts = [at, str(run) if run else "daemon", f"{name:<18}", what]
    return "  ".join(parts).rstrip()


def console_processor(stream: TextIO, *, only: bool) -> Processor:
    """A structlog processor: write the event's short line to ``stream``; with
    ``only`` (no JSON wanted) drop the event afterwards."""

    def write(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        line = human_line(event)
        if line is not None:
            stream.write(line + "\n")
            stream.flush()
        if only:
            raise structlog.DropEvent
        return event

    return write


# What CPython's asyncio logs when a child it waits for was reaped by someone else:
# ``Popen.send_signal`` polls (reaps) a child before it signals it, so anyio killing a
# discovery worker (``anyio.to_process``) at shutdown that exited by itself the same
# moment is reaped there, and the watcher's own ``waitpid`` finds nothing. Benign,
# after ``daemon_stopped``, and not the daemon's to print: an unformatted line on the
# operator's terminal. (A hook's process is killed with ``killpg``, never polled so.)
_REAPED_ELSEWHERE = "Unknown child process pid %d, will report returncode 255"


class _ReapedElsewhere(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _REAPED_ELSEWHERE


def configure(sinks: Sinks) -> None:
    """The daemon's structlog: the short line first (when a person reads one), then
    the JSON line (when a JSON sink was chosen). Watchers are fed by the run
    recorder, not by the log (``cutter.daemon.bus``)."""
    from cutter.runtime.logs import configure_json

    logging.getLogger("asyncio").addFilter(_ReapedElsewhere())
    human = sinks.human
    if human is None:
        configure_json(sinks.json)
        return
    configure_json(sinks.json or human, tap=console_processor(human, only=sinks.json is None))
