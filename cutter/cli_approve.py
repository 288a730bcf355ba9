"""Answering the gate a run waits at: shared by ``cutter approve`` and ``scripts/approve``.

``approve_gate`` asks which request the run waits on and answers exactly that
one; ``approval_for`` refuses (``E_RUN_NOT_AT_GATE``, ``E_REVIEW_DECISION_REQUIRED``)
before anything is sent. ``reviewer_main`` is the command ``scripts/approve`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from cutter.approvals import decision_kb_id
from cutter.cli_connect import ClientFailure, Target, daemon_options, expect
from cutter.cli_render import console, run_table, show_run
from cutter.client import Client, DaemonUnavailable
from cutter.kbdocs import Decision
from cutter.protocol import ApprovalStored, RunInfo, RunSummary, StatusOf, SubmitApproval
from cutter.walk import Gate

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ApprovalInput:
    run_id: str
    approver: str
    reason: str
    decision: Decision = Decision.APPROVE
    review_decision_id: str | None = None
    resume: bool = True


def approval_for(run: RunSummary, given: ApprovalInput) -> SubmitApproval:
    """The approval that answers exactly the request ``run`` waits on, or why not."""
    wait = run.waiting
    if wait is None:
        raise ClientFailure(
            "E_RUN_NOT_AT_GATE",
            f"run {run.run_id} is {run.state.value} and waits at no gate: nothing to approve",
        )
    if wait.gate is Gate.SG_2 and given.review_decision_id is None:
        raise ClientFailure(
            "E_REVIEW_DECISION_REQUIRED",
            f"run {run.run_id} waits at SG_2: pass --review-decision-id ID "
            "(the review decision this approval rests on)",
        )
    return SubmitApproval(
        run_id=run.run_id,
        gate=wait.gate,
        request_digest=wait.request_digest,
        nonce=wait.nonce,
        decision=given.decision,
        approver=given.approver,
        reason=given.reason,
        review_decision_id=given.review_decision_id,
        resume=given.resume,
    )


async def approve_gate(
    client: Client, given: ApprovalInput, show: Callable[[RunSummary], None] | None = None
) -> ApprovalStored:
    """Ask which request the run waits on, ``show`` it, and answer exactly that one."""
    run = expect(await client.request(StatusOf(run_id=given.run_id)), RunInfo).run
    command = approval_for(run, given)
    if show is not None:
        show(run)
    try:
        reply = await client.request(command)
    except DaemonUnavailable as exc:
        kb_id = decision_kb_id(
            command.run_id,
            command.gate,
            command.request_digest,
            command.nonce,
            command.approver,
            command.decision,
        )
        raise DaemonUnavailable(
            f"{exc.message}; the decision may have been stored and used as {kb_id}: see "
            f"`cutter status {command.run_id}` (the same decision sent again is used at "
            "most once)"
        ) from exc
    return expect(reply, ApprovalStored)


def approval_options(func: F) -> F:
    """RUN_ID and what a reviewer declares: the same for cutter approve and scripts/approve."""
    for option in reversed(
        [
            click.argument("run_id"),
            click.option("--approver", required=True, help="Who decides (not the starter)."),
            click.option("--reason", required=True, help="Why, in a sentence."),
            click.option("--reject", is_flag=True, help="Reject: end the run, roll back writes."),
            click.option(
                "--review-decision-id",
                default=None,
                help="Required at SG_2: the review decision this approval rests on.",
            ),
        ]
    ):
        func = option(func)
    return func


def approval_input(
    run_id: str,
    approver: str,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
    resume: bool = True,
) -> ApprovalInput:
    return ApprovalInput(
        run_id=run_id,
        approver=approver,
        reason=reason,
        decision=Decision.REJECT if reject else Decision.APPROVE,
        review_decision_id=review_decision_id,
        resume=resume,
    )


def stored_headline(reply: ApprovalStored, given: ApprovalInput) -> str:
    after = f"run is now {reply.run.state.value}"
    if not given.resume:
        after = f"not resumed: cutter resume {reply.run.run_id} --approval {reply.approval_kb_id}"
    verb = "approved" if given.decision is Decision.APPROVE else "rejected"
    if reply.replayed:
        return (
            f"{given.approver} {verb} before: this decision was already used as "
            f"{reply.approval_kb_id} and was not used again; {after}"
        )
    return f"{given.approver} {verb}: stored as {reply.approval_kb_id}; {after}"


@click.command("approve")
@approval_options
@daemon_options
def reviewer_main(
    socket_path: Path,
    as_json: bool,
    run_id: str,
    approver: str,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
) -> None:
    """Show the request RUN_ID waits on at its gate, then send your decision on it."""
    target = Target(socket_path, as_json)
    given = approval_input(run_id, approver, reason, reject, review_decision_id)

    def show(run: RunSummary) -> None:
        if as_json:
            return
        out = console()
        out.print(f"You are answering this request ({given.decision.value}):")
        out.print(run_table(run, full=True))
        out.print(f"decision: {given.decision.value} by {approver}: {reason}")

    reply = target.call(lambda client: approve_gate(client, given, show))
    show_run(target, reply, stored_headline(reply, given))
