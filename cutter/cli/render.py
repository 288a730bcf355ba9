"""How the ``cutter`` client subcommands print what the daemon says to a person.

Tables for one run or many, one line per watched transition, and the hint that
says how to answer a gate. With ``--json`` none of this is used: the reply frame
is printed as the protocol encodes it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from rich import box
from rich.console import Console
from rich.table import Table

from cutter.cli.connect import Endpoint
from cutter.core.protocol import ApprovalStored, Event, RunInfo, RunSummary
from cutter.core.route import Gate

DIGEST_PREFIX = 16
NONCE_PREFIX = 8


def console() -> Console:
    """Tables on stdout; off a terminal wide enough that a run id never wraps."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _ago(when: datetime, now: datetime | None = None) -> str:
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _when(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _prefix(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size] + "…"


def run_table(run: RunSummary, *, full: bool = False) -> Table:
    """One run as key/value rows, with what its gate waits for; ``full`` digests."""
    table = Table(show_header=False, box=None, show_edge=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    stop = run.stop_code or "-"
    if run.stop_message:
        stop = f"{stop}: {run.stop_message}"
    rows = [
        ("run", run.run_id),
        ("document", run.doc_id),
        ("mode", run.mode.value),
        ("state", run.state.value),
        ("started by", run.started_by),
        *_restoring(run),
        ("phases passed", str(run.phases_passed)),
        ("stop", stop),
        ("updated", f"{_when(run.updated_at)} ({_ago(run.updated_at)})"),
    ]
    if (wait := run.waiting) is not None:
        rows += [
            ("waits at", f"{wait.gate.value} since {_when(wait.since)} ({_ago(wait.since)})"),
            ("request", wait.request_kb_id),
            (
                "request digest",
                wait.request_digest if full else _prefix(wait.request_digest, DIGEST_PREFIX),
            ),
            ("nonce", wait.nonce if full else _prefix(wait.nonce, NONCE_PREFIX)),
            ("approvals", f"{wait.approvals}/{wait.required_approvals}"),
        ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _restoring(run: RunSummary) -> list[tuple[str, str]]:
    """A restore run's row: what it puts back (docs/revert.md)."""
    order = run.restore
    if order is None:
        return []
    what = f"reverts {order.reverts}: " if order.reverts else ""
    return [("restores", f"{what}rows of backup {order.backup_id}")]


def runs_table(runs: tuple[RunSummary, ...]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("run", "doc", "mode", "state", "waiting", "stop"):
        table.add_column(name.upper(), no_wrap=name in ("run", "state"))
    for run in sorted(runs, key=lambda r: r.updated_at):
        wait = run.waiting
        waiting = (
            "-"
            if wait is None
            else f"{wait.gate.value} since {_when(wait.since)} ({_ago(wait.since)}), "
            f"{wait.approvals}/{wait.required_approvals} approvals"
        )
        table.add_row(
            run.run_id, run.doc_id, run.mode.value, run.state.value, waiting, run.stop_code or "-"
        )
    return table


def approve_hint(run: RunSummary) -> str | None:
    if run.waiting is None:
        return None
    wait = run.waiting
    extra = " --review-decision-id ID" if wait.gate is Gate.SG_2 else ""
    return (
        f"approve with: cutter approve {run.run_id} --gate {wait.gate.value} "
        f"--request-digest {wait.request_digest[:DIGEST_PREFIX]} --reason TEXT"
        f"{extra} [--reject]"
    )


_SUBJECT_KEYS: dict[str, tuple[str, ...]] = {
    "phase_started": ("phase",),
    "phase_passed": ("phase",),
    "phase_failed": ("phase", "code", "error_id"),
    "gate_opened": ("gate", "request_digest"),
    "gate_closed": ("gate", "decision"),
    "approval_consumed": ("gate", "decision", "approver", "approval_kb_id"),
    "approval_refused": ("gate", "code", "approval_kb_id"),
    "drift_detected": ("gate", "approval_kb_id"),
}


def event_line(event: Event) -> str:
    """One transition, one line: time, run, event, what changed."""
    detail = event.detail
    if event.event == "run_state_changed":
        what = f"{detail.get('from_state')} -> {detail.get('to_state')}"
        if detail.get("stop_code"):
            what += f" ({detail['stop_code']})"
    else:
        parts = []
        for key in _SUBJECT_KEYS.get(event.event, ()):
            value = detail.get(key)
            if value is None:
                continue
            text = str(value)
            parts.append(_prefix(text, DIGEST_PREFIX) if key == "request_digest" else text)
        what = " ".join(parts)
    at = event.at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    return f"{at}  {event.run_id}  {event.event:<18} {what}".rstrip()


def show_run(
    target: Endpoint, reply: RunInfo | ApprovalStored, headline: str | None = None
) -> None:
    if target.as_json:
        target.frame(reply)
        return
    out = console()
    if headline:
        out.print(headline)
    out.print(run_table(reply.run))
    if hint := approve_hint(reply.run):
        out.print(hint)
