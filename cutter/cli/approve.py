"""Answering the gate a run waits at: shared by ``cutter approve`` and ``scripts/approve``.

A reviewer names the request they decide on: the gate (``--gate``, required) and,
optionally, the request digest they were shown (``--request-digest``, the whole
digest or a prefix of at least 12 hex characters). ``approve_gate`` asks which
request the run waits on and answers it only if it is the one named: a run that
waits elsewhere is never answered in the reviewer's name. ``approval_for`` refuses
before anything is sent (``E_RUN_NOT_AT_GATE``, ``APPROVAL_WRONG_GATE``,
``APPROVAL_STALE``, ``E_BAD_REQUEST_DIGEST``, ``E_REVIEW_DECISION_REQUIRED``); the
daemon checks the same again when the decision arrives. With ``--sign-with KEY``
the decision is signed here, with the reviewer's own SSH key (``ssh-keygen -Y
sign``; a private key file, or the public half of an ssh-agent key), over
``cutter.core.signing.approval_payload`` — the request as the reviewer was shown it.
``reviewer_main`` is the command ``scripts/approve`` runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import click
import msgspec

from cutter.cli.connect import ClientFailure, Endpoint, daemon_options, expect
from cutter.cli.outcome import EXIT_STATUS_HELP, finish
from cutter.cli.render import console, run_table, show_run
from cutter.core.approvals import decision_kb_id
from cutter.core.errors import ErrorCode, SignatureMalformed
from cutter.core.kbdocs import Decision
from cutter.core.principals import own_principal
from cutter.core.protocol import ApprovalStored, RunInfo, RunSummary, StatusOf, SubmitApproval
from cutter.core.route import Gate
from cutter.core.signing import approval_payload
from cutter.core.states import RunState
from cutter.daemon.client import Client, DaemonUnavailable
from cutter.runtime.sshsig import SigningFailed, sign

F = TypeVar("F", bound=Callable[..., Any])


# A request digest a reviewer may type: the whole sha-256 or a prefix long enough
# (48 bits) that no other request of the run shares it by accident.
MIN_DIGEST_PREFIX = 12
_HEX_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_DIGEST_PREFIX},64}}")


@dataclass(frozen=True, slots=True)
class ApprovalInput:
    run_id: str
    gate: Gate
    approver: str | None  # None: the caller's own name (login, or with --dsn the database's)
    reason: str
    request_digest: str | None = None  # what the reviewer was shown: all of it, or a prefix
    decision: Decision = Decision.APPROVE
    review_decision_id: str | None = None
    resume: bool = True
    sign_with: Path | None = None  # the reviewer's SSH key: sign the decision with it


def approval_for(run: RunSummary, given: ApprovalInput) -> SubmitApproval:
    """The approval that answers the request ``given`` names, if ``run`` waits on it;
    otherwise why not (nothing is sent)."""
    wanted = given.request_digest
    if wanted is not None and not _HEX_PREFIX.fullmatch(wanted):
        raise ClientFailure(
            ErrorCode.BAD_REQUEST_DIGEST,
            f"--request-digest must be {MIN_DIGEST_PREFIX} to 64 lowercase hex characters "
            "(the request digest you were shown, or its prefix)",
        )
    wait = run.waiting
    if wait is None:
        raise ClientFailure(
            ErrorCode.RUN_NOT_AT_GATE,
            f"run {run.run_id} is {run.state.value} and waits at no gate: nothing to approve",
        )
    if wait.gate is not given.gate:
        raise ClientFailure(
            ErrorCode.APPROVAL_WRONG_GATE,
            f"run {run.run_id} waits at {wait.gate.value}, not {given.gate.value}: your "
            f"decision was not sent; review the {wait.gate.value} request "
            f"(cutter review {run.run_id}) and decide on that one",
        )
    if wanted is not None and not wait.request_digest.startswith(wanted):
        raise ClientFailure(
            ErrorCode.APPROVAL_STALE,
            f"run {run.run_id} waits at {wait.gate.value} on request "
            f"{wait.request_digest[:16]}…, not the {wanted[:16]}… you name: your decision "
            "was not sent; the request changed since you looked",
        )
    if wait.gate is Gate.SG_2 and given.review_decision_id is None:
        raise ClientFailure(
            ErrorCode.REVIEW_DECISION_REQUIRED,
            f"run {run.run_id} waits at SG_2: pass --review-decision-id ID "
            "(the review decision this approval rests on)",
        )
    return SubmitApproval(
        run_id=run.run_id,
        gate=wait.gate,
        request_digest=wait.request_digest,
        nonce=wait.nonce,
        decision=given.decision,
        approver=given.approver or own_principal(),
        reason=given.reason,
        review_decision_id=given.review_decision_id,
        resume=given.resume,
    )


async def approve_gate(
    client: Client, given: ApprovalInput, show: Callable[[RunSummary], None] | None = None
) -> ApprovalStored:
    """Ask which request the run waits on, ``show`` it, and answer it if it is the one
    ``given`` names; the daemon refuses it too if it is not open when it arrives."""
    run = expect(await client.request(StatusOf(run_id=given.run_id)), RunInfo).run
    command = approval_for(run, given)
    if show is not None:
        show(run)
    if given.sign_with is not None:
        command = await signed(command, given.sign_with)
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


async def signed(command: SubmitApproval, key: Path) -> SubmitApproval:
    """``command`` signed now with ``key`` (in a worker thread: it may ask for a
    passphrase, or an agent or token may take its time)."""
    issued_at = datetime.now(UTC)
    try:
        payload = approval_payload(
            run_id=command.run_id,
            gate=command.gate,
            request_digest=command.request_digest,
            nonce=command.nonce,
            decision=command.decision.value,
            approver=command.approver,
            issued_at=issued_at,
            review_decision_id=command.review_decision_id,
        )
        signature = await anyio.to_thread.run_sync(lambda: sign(payload, key))
    except (SigningFailed, SignatureMalformed) as exc:
        raise ClientFailure(exc.code, f"{exc.message}: your decision was not sent") from exc
    return msgspec.structs.replace(command, issued_at=issued_at, signature=signature)


def approval_options(func: F) -> F:
    """RUN_ID and what a reviewer declares: the same for cutter approve and scripts/approve."""
    for option in reversed(
        [
            click.argument("run_id"),
            click.option(
                "--gate",
                required=True,
                type=click.Choice([g.value for g in Gate]),
                help="The gate you decide on; a run waiting elsewhere is not answered.",
            ),
            click.option(
                "--request-digest",
                default=None,
                help=f"The request digest you reviewed (or its first {MIN_DIGEST_PREFIX}+ hex "
                "characters); refused if the open request is another.",
            ),
            click.option(
                "--approver",
                default=None,
                help="Who decides: by default you (your login name; with --dsn, your "
                "database login). Only a relay the policy names may declare someone else.",
            ),
            click.option("--reason", required=True, help="Why, in a sentence."),
            click.option("--reject", is_flag=True, help="Reject: end the run, roll back writes."),
            click.option(
                "--review-decision-id",
                default=None,
                help="Required at SG_2: the review decision this approval rests on.",
            ),
            click.option(
                "--sign-with",
                default=None,
                type=click.Path(dir_okay=False, path_type=Path),
                help="Sign the decision with this SSH key (a private key file, or the .pub "
                "of an ssh-agent key); gates that take signatures only need it.",
            ),
        ]
    ):
        func = option(func)
    return func


def approval_input(
    run_id: str,
    gate: str,
    request_digest: str | None,
    approver: str | None,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
    resume: bool = True,
    sign_with: Path | None = None,
) -> ApprovalInput:
    return ApprovalInput(
        run_id=run_id,
        gate=Gate(gate),
        request_digest=request_digest,
        approver=approver,
        reason=reason,
        decision=Decision.REJECT if reject else Decision.APPROVE,
        review_decision_id=review_decision_id,
        resume=resume,
        sign_with=sign_with,
    )


def asked_by(given: ApprovalInput) -> RunState | None:
    """The final state a decision asks for: a rejection ends the run REJECTED."""
    return RunState.REJECTED if given.decision is Decision.REJECT else None


def stored_headline(reply: ApprovalStored, given: ApprovalInput) -> str:
    after = f"run is now {reply.run.state.value}"
    if not given.resume:
        after = f"not resumed: cutter resume {reply.run.run_id} --approval {reply.approval_kb_id}"
    verb = "approved" if given.decision is Decision.APPROVE else "rejected"
    who = given.approver or own_principal()
    if reply.replayed:
        return (
            f"{who} {verb} before: this decision was already used as "
            f"{reply.approval_kb_id} and was not used again; {after}"
        )
    return f"{who} {verb}: stored as {reply.approval_kb_id}; {after}"


@click.command("approve", epilog=EXIT_STATUS_HELP)
@approval_options
@daemon_options
def reviewer_main(
    socket_path: Path,
    as_json: bool,
    run_id: str,
    gate: str,
    request_digest: str | None,
    approver: str | None,
    reason: str,
    reject: bool,
    review_decision_id: str | None,
    sign_with: Path | None,
) -> None:
    """Show the request RUN_ID waits on at GATE, then send your decision on it."""
    target = Endpoint(socket_path, as_json)
    given = approval_input(
        run_id,
        gate,
        request_digest,
        approver,
        reason,
        reject,
        review_decision_id,
        sign_with=sign_with,
    )

    def show(run: RunSummary) -> None:
        if as_json:
            return
        out = console()
        out.print(f"You are answering this request ({given.decision.value}):")
        out.print(run_table(run, full=True))
        out.print(f"decision: {given.decision.value} by {approver or own_principal()}: {reason}")
        if sign_with is not None:
            out.print(f"signed with {sign_with} (ssh-keygen -Y sign)")

    reply = target.call(lambda client: approve_gate(client, given, show))
    show_run(target, reply, stored_headline(reply, given))
    finish(reply.run, asked_by(given), as_json=as_json)
