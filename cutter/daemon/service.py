"""The daemon's command handling: one method per command, each a typed reply.

Every command that touches a run runs as a job in the daemon's task group, not
in the connection's task: a client that vanishes mid-command cannot leave it
half-applied — the job finishes, only its answer is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar, assert_never

import anyio
from anyio.abc import TaskGroup

from cutter.core.approvals import decision_kb_id
from cutter.core.errors import (
    AccessDenied,
    ApprovalConsumedAlready,
    ApprovalInvalid,
    ApprovalSignatureInvalid,
    ApprovalStale,
    ApprovalWrongGate,
    ApproverNotAllowed,
    CutterError,
    DuplicateApprover,
    ErrorCode,
    SelfApprovalRefused,
    SignatureMalformed,
    new_error_id,
)
from cutter.core.ids import (
    check_doc_id,
    check_kb_id,
    check_reason,
    check_run_id,
    new_run_id,
)
from cutter.core.kbdocs import Approval, PolicyVersion
from cutter.core.mode import require_mode_allowed
from cutter.core.policy import GateRule, Policy, listed, parse_policy
from cutter.core.ports import KillSwitchControl
from cutter.core.principals import Caller, acting, own_principal
from cutter.core.protocol import (
    MAX_FRAME_BYTES,
    AbortRun,
    Accepted,
    AnyCommand,
    ApprovalStored,
    Error,
    Event,
    KillSwitchState,
    ListBackups,
    ListNotifications,
    ListRuns,
    MintLink,
    Ping,
    PolicyInfo,
    Pong,
    Reply,
    Restore,
    Resume,
    Revert,
    Review,
    ReviewLink,
    ReviewOf,
    RunInfo,
    RunList,
    RunSummary,
    SetKillSwitch,
    SetPolicy,
    ShowPolicy,
    Shutdown,
    ShuttingDownReply,
    Start,
    StatusOf,
    SubmitApproval,
    Watch,
    encode,
)
from cutter.core.restoring import RestoreOrder
from cutter.core.run_pages import check_filter, page_of
from cutter.core.secrets import scrub
from cutter.core.sidecar import GateRecord, Sidecar
from cutter.core.signing import check_signature
from cutter.daemon.bus import EventBus, Subscription
from cutter.daemon.logid import logged_id
from cutter.daemon.notifications import list_notifications
from cutter.daemon.restores import list_backups, start_restore
from cutter.runtime.logs import Logger, get_logger
from cutter.walk.policy_book import current, default_policy, gate_policy, replace
from cutter.walk.runner import Runner
from cutter.web.errors import HttpNotServing, WebProofNotAccepted
from cutter.web.links import LinkBook

T = TypeVar("T")


def error_reply(command_id: str | None, exc: CutterError) -> Error:
    """What a client is told of a typed error: its registered code, its one line
    (secrets scrubbed), from which the client raises the same class."""
    return Error(id=command_id, code=exc.code, message=scrub(exc.message))


@dataclass
class Daemon:
    runner: Runner
    kill_switch: KillSwitchControl
    bus: EventBus
    jobs: TaskGroup
    stop_requested: anyio.Event = field(default_factory=anyio.Event)
    log: Logger = field(default_factory=lambda: get_logger(component="daemon"))
    owner: str = field(default_factory=own_principal)  # the daemon's own principal
    policy_lock: anyio.Lock = field(default_factory=anyio.Lock)
    links: LinkBook = field(default_factory=LinkBook)  # the review page's minted links
    web_url: str | None = None  # where the review page listens (None: no --http)
    policy_changed: Callable[[], None] | None = None  # the deliverer's wake: reminders, hooks

    @property
    def fallback_policy(self) -> Policy:
        return default_policy(self.runner.config.policy, self.owner)

    async def policy(self) -> PolicyVersion:
        """The policy in force now (read each command: a change applies at once)."""
        return await current(self.runner.config.kb, self.fallback_policy)

    def require_admin(self, policy: Policy, caller: Caller, what: str) -> str:
        principal = caller.require()
        if not policy.is_admin(principal):
            raise AccessDenied(f"{principal} may not {what}: the policy names it no admin")
        return principal

    async def job(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` in the daemon's task group and wait for its result."""
        done = anyio.Event()
        outcome: list[T] = []
        failure: list[BaseException] = []

        async def run() -> None:
            try:
                outcome.append(await work())
            except Exception as exc:
                failure.append(exc)
            finally:
                done.set()

        self.jobs.start_soon(run)
        await done.wait()
        if failure:
            raise failure[0]
        return outcome[0]

    async def starter(self, declared: str, caller: Caller, doc_id: str) -> str:
        """Who starts a run of ``doc_id`` for ``caller`` (``AccessDenied`` unless the
        policy lists them as a starter of it)."""
        policy = (await self.policy()).policy
        started_by = acting(policy, caller, "started_by", declared)
        if not listed(started_by, policy.starters_for(doc_id)):
            raise AccessDenied(f"{started_by} may not start runs of {doc_id}")
        return started_by

    async def start(
        self,
        command: Start | Revert | Restore,
        caller: Caller,
        doc_id: str,
        started_by: str,
        restore: RestoreOrder | None = None,
    ) -> Accepted | RunInfo:
        """Start a run (a restore run with ``restore``) checked by the caller: everything
        a background start could refuse is checked before Accepted."""
        runner, run_id = self.runner, new_run_id()
        if not command.wait:
            # The run is recorded, holding its document, before Accepted: a busy
            # document is the answer (STOP_DOCUMENT_BUSY), not a log line.
            await self.job(
                lambda: runner.open(
                    doc_id,
                    command.mode,
                    started_by=started_by,
                    run_id=run_id,
                    principal=caller.principal,
                    restore=restore,
                )
            )

            async def walk() -> RunSummary:
                return RunSummary.of(await runner.resume(run_id))

            self.background(walk, f"start {run_id}")
            return Accepted(id=command.id, run_id=run_id)

        async def start() -> RunSummary:
            sidecar = await runner.start(
                doc_id,
                command.mode,
                started_by=started_by,
                run_id=run_id,
                principal=caller.principal,
                restore=restore,
            )
            return RunSummary.of(sidecar)

        return RunInfo(id=command.id, run=await self.job(start))

    def background(self, work: Callable[[], Awaitable[object]], what: str) -> None:
        """Run ``work`` in the daemon's task group; nobody waits for it."""

        async def run() -> None:
            try:
                await work()
            except CutterError as exc:
                self.log.info("background_command_refused", what=what, code=exc.code)
            except Exception:
                self.log.exception("background_command_failed", what=what, error_id=new_error_id())

        self.jobs.start_soon(run)

    def _received(self, command: AnyCommand | Watch, caller: Caller) -> None:
        """Every command leaves one log line, with its id bounded (``logged_id``)."""
        self.log.info(
            "command_received",
            cmd=type(command).__name__,
            id=logged_id(command.id),
            peer=caller.peer,
            principal=caller.principal,
        )

    async def handle(self, command: AnyCommand, caller: Caller) -> Reply:
        """Answer one command; a refusal or a bug becomes an Error reply."""
        self._received(command, caller)
        try:
            if isinstance(command, Ping):
                return Pong(id=command.id)
            caller.require()  # everything but ping needs someone the transport proved
            reply = await self._dispatch(command, caller)
            await self.runner.config.durable()  # nothing is acknowledged before it is durable
            return reply
        except CutterError as exc:
            return error_reply(command.id, exc)
        except Exception:
            error_id = new_error_id()
            self.log.exception("command_failed", id=logged_id(command.id), error_id=error_id)
            return Error(
                id=command.id, code=ErrorCode.INTERNAL, message="internal error", error_id=error_id
            )

    async def _dispatch(self, command: AnyCommand, caller: Caller) -> Reply:
        runner = self.runner
        peer = caller.peer
        match command:
            case Ping():
                return Pong(id=command.id)
            case Start():
                require_mode_allowed(command.mode)
                doc_id = check_doc_id(command.doc_id)
                started_by = await self.starter(command.started_by, caller, doc_id)
                return await self.start(command, caller, doc_id, started_by)
            case StatusOf():
                return RunInfo(
                    id=command.id, run=RunSummary.of(await runner.status(command.run_id))
                )
            case ListRuns():
                where = check_filter(command.state, command.doc_id)
                page = await page_of(runner.config.run_store, where, command.limit, command.cursor)
                return RunList(
                    id=command.id,
                    runs=tuple(page.runs),
                    unreadable=tuple(page.unreadable),
                    next_cursor=page.next_cursor,
                )
            case SubmitApproval():
                return await self._approve(command, caller)
            case ReviewOf():
                sidecar, review = await runner.review(check_run_id(command.run_id))
                reply = Review(id=command.id, run=RunSummary.of(sidecar), review=review)
                if len(encode(reply)) > MAX_FRAME_BYTES:
                    return Error(
                        id=command.id,
                        code=ErrorCode.REVIEW_TOO_LARGE,
                        message=f"the review of {sidecar.run_id} ({len(review.units)} units) "
                        f"does not fit in one {MAX_FRAME_BYTES}-byte frame",
                    )
                return reply
            case Resume():
                run_id = (await runner.status(command.run_id)).run_id  # E_UNKNOWN_RUN now
                approval = (
                    None if command.approval_kb_id is None else check_kb_id(command.approval_kb_id)
                )

                async def resume() -> RunSummary:
                    return RunSummary.of(await runner.resume(run_id, approval, peer=peer))

                if not command.wait:
                    self.background(resume, f"resume {run_id}")
                    return Accepted(id=command.id, run_id=run_id)
                return RunInfo(id=command.id, run=await self.job(resume))
            case AbortRun():
                run_id = check_run_id(command.run_id)
                policy = (await self.policy()).policy
                by = acting(policy, caller, "by", command.by)
                run = await runner.status(run_id)
                if not policy.may_end(caller.require(), by, run.doc_id, run.started_by):
                    raise AccessDenied(
                        f"{by} may not abort {run_id}: not its starter, an approver of "
                        f"{run.doc_id} or an admin"
                    )
                sidecar = await self.job(lambda: runner.abort(run_id, reason=command.reason, by=by))
                return RunInfo(id=command.id, run=RunSummary.of(sidecar))
            case SetKillSwitch():
                if command.engage:  # a safety stop: anyone authenticated may pull it
                    await self.kill_switch.engage(check_reason(command.reason))
                else:
                    policy = (await self.policy()).policy
                    self.require_admin(policy, caller, "release the kill switch")
                    await self.kill_switch.release()
                self.log.info(
                    "kill_switch_set",
                    engaged=command.engage,
                    principal=caller.principal,
                    peer=peer,
                )
                return KillSwitchState(id=command.id, engaged=await self.kill_switch.engaged())
            case Shutdown():
                self.require_admin((await self.policy()).policy, caller, "shut the daemon down")
                # The transport sets stop_requested once this reply is on its way.
                self.log.info("shutdown_requested", peer=peer)
                return ShuttingDownReply(id=command.id)
            case ShowPolicy():
                return self._policy_info(command.id, await self.policy(), caller)
            case MintLink():
                return await self._mint(command, caller)
            case SetPolicy():
                return await self._set_policy(command, caller)
            case ListNotifications():
                return await list_notifications(runner.config.run_store, command)
            case Revert() | Restore():
                return await start_restore(self, command, caller)
            case ListBackups():
                return await list_backups(self, command)
            case Watch():
                raise RuntimeError("watch is a stream: the transport calls watch()")
            case _:
                assert_never(command)

    def _policy_info(self, id: str | None, stored: PolicyVersion, caller: Caller) -> PolicyInfo:
        return PolicyInfo(
            id=id,
            version=stored.version,
            policy=stored.policy,
            set_by=stored.set_by,
            set_at=stored.set_at,
            principal=caller.principal,
        )

    async def _set_policy(self, command: SetPolicy, caller: Caller) -> Reply:
        """Parse and check the new policy, let only an admin of the current one set it,
        record the change, then make it current. Anything refused changes nothing."""
        policy = parse_policy(command.text, command.format)
        async with self.policy_lock:
            before = await self.policy()
            by = self.require_admin(before.policy, caller, "change the policy")
            after = await replace(
                self.runner.config.kb, before, policy, by=by, at=self.runner.config.clock()
            )
        self.log.info("policy_changed", version=after.version, set_by=by, peer=caller.peer)
        if self.policy_changed is not None:  # reminders it turns on are due from now
            self.policy_changed()
        return self._policy_info(command.id, after, caller)

    async def _mint(self, command: MintLink, caller: Caller) -> ReviewLink:
        """A one-time link to decide the run's open request on the review page, as the
        caller's principal — if the policy lets that principal decide it there."""
        if self.web_url is None:
            raise HttpNotServing("the daemon serves no review page: start it with --http")
        principal = caller.require()
        run_id = check_run_id(command.run_id)
        sidecar = await self.runner.status(run_id)
        gate = sidecar.waiting_gate("no link")
        policy = (await self.policy()).policy
        rule = policy.gate_rule(sidecar.doc_id, gate.gate)
        check_may_decide(sidecar, gate, rule, principal)
        if command.ttl_seconds is not None and command.ttl_seconds < 0:
            raise ApprovalInvalid(run_id, "ttl_seconds must be 0 or more")
        token, link = self.links.mint(
            principal=principal,
            run_id=run_id,
            gate=gate.gate,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            now=self.runner.config.clock(),
            ttl=None if command.ttl_seconds is None else timedelta(seconds=command.ttl_seconds),
        )
        self.log.info(
            "review_link_minted",
            run_id=run_id,
            gate=gate.gate.value,
            principal=principal,
            peer=caller.peer,
            expires_at=link.expires_at.isoformat(),
        )
        return ReviewLink(
            id=command.id,
            url=f"{self.web_url}/runs/{run_id}/link/{token}",
            run_id=run_id,
            gate=gate.gate,
            request_digest=gate.request_digest,
            principal=principal,
            expires_at=link.expires_at,
        )

    async def web_decide(self, command: SubmitApproval, caller: Caller) -> ApprovalStored:
        """A decision posted on the review page through a link minted for
        ``caller.principal``: stored and used exactly as a socket approval is."""
        reply = await self._approve(command, caller, via="web")
        assert isinstance(reply, ApprovalStored)
        return reply

    async def _approve(
        self, command: SubmitApproval, caller: Caller, via: Literal["web"] | None = None
    ) -> Reply:
        """Store the decision where its identity names it (``decision_kb_id``) and resume.

        A retry of the same decision (the client lost the connection, the daemon was
        killed and restarted) finds the same approval: one not yet consumed is stored
        afresh and used; one this run consumed is never used twice — the consumption
        is finished if a crash cut it short, or the reply says ``replayed``.

        A decision this run has not consumed must name the request the run waits on
        now (``require_open_request``), or it is refused and nothing is stored."""
        runner = self.runner
        peer = caller.peer
        run_id = check_run_id(command.run_id)
        sidecar = await runner.status(run_id)
        policy = (await self.policy()).policy
        approver = acting(policy, caller, "approver", command.approver)
        if not listed(approver, gate_policy(policy, sidecar.doc_id, command.gate).approvers):
            raise ApproverNotAllowed(
                run_id, f"{approver} is not an approver of {command.gate} for {sidecar.doc_id}"
            )
        kb_id = check_kb_id(
            decision_kb_id(
                run_id,
                command.gate,
                command.request_digest,
                command.nonce,
                approver,
                command.decision,
            )
        )
        holder = await runner.config.run_store.consumed_by(kb_id)
        if holder is None:
            require_open_request(sidecar, command)
            issued_at, signature = signed_fields(run_id, command, runner.config.clock())
            approval = Approval(
                run_id=run_id,
                gate=command.gate,
                request_digest=command.request_digest,
                nonce=command.nonce,
                decision=command.decision,
                approver=approver,
                reason=check_reason(command.reason),
                issued_at=issued_at,
                review_decision_id=command.review_decision_id,
                principal=caller.principal,
                signature=signature,
                via=via,
            )
            await runner.config.kb.put(kb_id, approval)
            self.log.info(
                "approval_submitted",
                run_id=run_id,
                approval_kb_id=kb_id,
                approver=approver,
                principal=caller.principal,
                peer=peer,
                signed=signature is not None,
                via=via,
            )
        elif kb_id in sidecar.approvals_used or not command.resume:
            return self._replayed(command, kb_id, sidecar)
        if not command.resume:
            return ApprovalStored(id=command.id, approval_kb_id=kb_id, run=RunSummary.of(sidecar))
        try:
            sidecar = await self.job(lambda: runner.resume(run_id, kb_id, peer=peer))
        except ApprovalConsumedAlready:
            # Raced by a resume with this same decision (start-up recovery, a retry).
            if await runner.config.run_store.consumed_by(kb_id) != run_id:
                raise
            return self._replayed(command, kb_id, await runner.status(run_id))
        return ApprovalStored(id=command.id, approval_kb_id=kb_id, run=RunSummary.of(sidecar))

    def _replayed(self, command: SubmitApproval, kb_id: str, sidecar: Sidecar) -> ApprovalStored:
        self.log.info("approval_replayed", run_id=sidecar.run_id, approval_kb_id=kb_id)
        return ApprovalStored(
            id=command.id, approval_kb_id=kb_id, run=RunSummary.of(sidecar), replayed=True
        )

    async def watch(self, command: Watch, caller: Caller) -> AsyncIterator[Event]:
        """Transition events as they happen, until the watcher goes or lags."""
        self._received(command, caller)
        caller.require()
        run_id = None if command.run_id is None else check_run_id(command.run_id)
        subscription = self.bus.subscribe(run_id)
        try:
            async for event in subscription.receive:
                yield event
        finally:
            self.bus.unsubscribe(subscription)

    def watcher_dropped(self, subscription: Subscription) -> None:
        """The bus dropped a watcher that fell behind: say so now, not when it leaves."""
        self.log.info("watcher_dropped", run_id=subscription.run_id, reason="lagged")


def signed_fields(
    run_id: str, command: SubmitApproval, now: datetime
) -> tuple[datetime, str | None]:
    """The approval's ``issued_at`` and signature: the time it was signed and the
    signature (well formed; whether it verifies is the gatekeeper's to say), or now
    and none for an unsigned decision."""
    if command.signature is None:
        if command.issued_at is not None:
            raise ApprovalInvalid(run_id, "issued_at is taken only with a signature")
        return now, None
    if command.issued_at is None or command.issued_at.utcoffset() is None:
        raise ApprovalInvalid(run_id, "a signed decision needs issued_at with a timezone")
    try:
        return command.issued_at, check_signature(command.signature)
    except SignatureMalformed as exc:
        raise ApprovalSignatureInvalid(run_id, exc.message) from exc


def require_open_request(sidecar: Sidecar, command: SubmitApproval) -> None:
    """A new decision answers the request the run waits on now, or it is refused:
    one made for SG_1 is never re-aimed at SG_2, nor one for an earlier opening of
    a gate (its nonce) at the gate as it is now."""
    gate = sidecar.waiting_gate(f"the {command.gate.value} decision is not stored")
    if command.gate is not gate.gate:
        raise ApprovalWrongGate(
            sidecar.run_id,
            f"run {sidecar.run_id} waits at {gate.gate.value}, not {command.gate.value}: "
            "the decision is not stored",
        )
    if command.request_digest != gate.request_digest or command.nonce != gate.nonce:
        raise ApprovalStale(
            sidecar.run_id,
            f"the decision answers another {gate.gate.value} request than the one open "
            f"({gate.request_digest[:16]}…): it is not stored",
        )


def check_may_decide(sidecar: Sidecar, gate: GateRecord, rule: GateRule, principal: str) -> None:
    """Refuse a review link the gatekeeper would refuse the decision of: a principal
    the policy does not name for this gate, the starter (unless self-approval is
    allowed), one who decided already, or a gate that does not take the page."""
    run_id = sidecar.run_id
    if not listed(principal, rule.approvers):
        raise ApproverNotAllowed(
            run_id, f"{principal} is not an approver of {gate.gate} for {sidecar.doc_id}"
        )
    if principal == sidecar.started_by and not rule.allow_self_approval:
        raise SelfApprovalRefused(
            run_id, f"{principal} started run {run_id} and may not approve it"
        )
    if principal in gate.approvers:
        raise DuplicateApprover(run_id, f"{principal} already decided {gate.gate} of {run_id}")
    proofs = rule.proofs_for(sidecar.mode)
    if "web" not in proofs:
        raise WebProofNotAccepted(
            f"the policy takes only {' or '.join(proofs)} proofs at {gate.gate} of "
            f"{sidecar.mode.value} runs of {sidecar.doc_id}, not the review page: no link minted"
        )
