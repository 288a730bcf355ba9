"""The daemon's wire protocol, version 1: newline-delimited msgspec JSON frames.

Every client frame is one ``Command`` (tagged by ``cmd``) and is answered by one
``Reply`` (tagged by ``reply``) echoing its ``id``; ``watch`` is answered by a
stream of ``Event`` frames instead. Frames are decoded once, strictly, at the
edge: anything else gets an ``Error`` frame and changes nothing. See
docs/protocol.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from cutter.core.errors import ErrorCode, one_line
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.outbox import LIST_DEFAULT_LIMIT, DeliveryState, NoticeRecord
from cutter.core.policy import Policy
from cutter.core.quarantine import UnreadableRun
from cutter.core.restoring import RestoreOrder, SavedBackup
from cutter.core.review import GateReview
from cutter.core.route import Gate
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1 << 20  # a longer frame is refused and its connection closed
RUNS_DEFAULT_LIMIT = 100  # runs in one page of `runs` (cutter.core.run_pages)
RUNS_MAX_LIMIT = 1000


class Frame(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    v: int = PROTOCOL_VERSION
    id: str | None = None  # the client's correlation id, echoed in the reply


# --- commands -------------------------------------------------------------------
class Command(Frame, frozen=True, kw_only=True, tag_field="cmd"):
    pass


class Ping(Command, frozen=True, kw_only=True, tag="ping"):
    pass


class Start(Command, frozen=True, kw_only=True, tag="start"):
    doc_id: str
    started_by: str
    mode: Mode = Mode.DRY_RUN
    wait: bool = True  # answer at the run's first stop, or at once with Accepted


class Revert(Command, frozen=True, kw_only=True, tag="revert"):
    """Start a restore run putting the rows of ``run_id``'s document back as they were
    before it (docs/revert.md); answered as ``start`` is."""

    run_id: str
    started_by: str
    mode: Mode = Mode.DRY_RUN
    wait: bool = True


class Restore(Command, frozen=True, kw_only=True, tag="restore"):
    """Start a restore run putting ``doc_id``'s rows back as ``backup_id`` holds them."""

    doc_id: str
    backup_id: str
    started_by: str
    mode: Mode = Mode.DRY_RUN
    wait: bool = True


class ListBackups(Command, frozen=True, kw_only=True, tag="backups"):
    """The document's stored backups, oldest first: answered by ``backups``."""

    doc_id: str


class StatusOf(Command, frozen=True, kw_only=True, tag="status"):
    run_id: str


class ListRuns(Command, frozen=True, kw_only=True, tag="runs"):
    """One page of runs in run_id order (``cutter.core.run_pages``): those in ``state`` and
    of ``doc_id``, after the page ``cursor`` (a ``next_cursor``) ended."""

    state: RunState | None = None
    doc_id: str | None = None
    limit: int = RUNS_DEFAULT_LIMIT
    cursor: str | None = None


class SubmitApproval(Command, frozen=True, kw_only=True, tag="approve"):
    """Store a reviewer's decision as an Approval KB doc and, by default, resume with it."""

    run_id: str
    gate: Gate
    request_digest: str
    nonce: str
    decision: Decision
    approver: str
    reason: str
    review_decision_id: str | None = None
    resume: bool = True
    # A signed decision: the approver's armored SSH signature over
    # ``cutter.core.signing.approval_payload`` of these fields and ``issued_at`` (the time
    # it was signed, which the stored approval then carries). Both or neither.
    issued_at: datetime | None = None
    signature: str | None = None


class ReviewOf(Command, frozen=True, kw_only=True, tag="review"):
    """What the gate the run waits at authorises: answered by ``review``."""

    run_id: str


class Resume(Command, frozen=True, kw_only=True, tag="resume"):
    run_id: str
    approval_kb_id: str | None = None
    wait: bool = True


class AbortRun(Command, frozen=True, kw_only=True, tag="abort"):
    run_id: str
    reason: str
    by: str


class Watch(Command, frozen=True, kw_only=True, tag="watch"):
    run_id: str | None = None  # None: every run


class SetKillSwitch(Command, frozen=True, kw_only=True, tag="kill_switch"):
    engage: bool
    reason: str = ""


class Shutdown(Command, frozen=True, kw_only=True, tag="shutdown"):
    pass


class ShowPolicy(Command, frozen=True, kw_only=True, tag="policy_show"):
    pass


class SetPolicy(Command, frozen=True, kw_only=True, tag="policy_set"):
    """Replace the policy with the one in ``text`` (a TOML or JSON file's content).
    Only a principal the current policy names an admin may."""

    text: str
    format: Literal["toml", "json"] = "toml"


class MintLink(Command, frozen=True, kw_only=True, tag="review_link"):
    """``cutter review RUN --web``: a one-time link to decide the run's open gate on
    the review page, bound to the caller's principal and that request
    (``cutter.web.links``). ``ttl_seconds`` may only shorten the daemon's
    ``--link-ttl``; 0 mints a link already expired (for tests)."""

    run_id: str
    ttl_seconds: int | None = None


class ListNotifications(Command, frozen=True, kw_only=True, tag="notifications"):
    """The newest ``limit`` notices of the outbox (of ``run_id``), each with its webhook
    deliveries; with ``state``, only those with a delivery in it (docs/notifications.md)."""

    state: DeliveryState | None = None
    run_id: str | None = None
    limit: int = LIST_DEFAULT_LIMIT


AnyCommand = (
    Ping
    | Start
    | StatusOf
    | ListRuns
    | SubmitApproval
    | ReviewOf
    | Resume
    | AbortRun
    | Watch
    | SetKillSwitch
    | Shutdown
    | ShowPolicy
    | SetPolicy
    | MintLink
    | ListNotifications
    | Revert
    | Restore
    | ListBackups
)


# --- replies ---------------------------------------------------------------------
class GateWait(msgspec.Struct, frozen=True, kw_only=True):
    """What a paused run waits for: the request an approval must answer."""

    gate: Gate
    since: datetime
    request_kb_id: str
    request_digest: str
    nonce: str
    approvals: int
    required_approvals: int


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    doc_id: str
    mode: Mode
    state: RunState
    started_by: str
    stop_code: str | None
    stop_message: str | None
    phases_passed: int
    waiting: GateWait | None
    updated_at: datetime
    started_by_principal: str | None = None  # a relay's, when it differs from started_by
    restore: RestoreOrder | None = None  # a restore run's order (docs/revert.md); None: a cut

    @classmethod
    def of(cls, sidecar: Sidecar) -> RunSummary:
        gate = sidecar.pending_gate
        return cls(
            run_id=sidecar.run_id,
            doc_id=sidecar.doc_id,
            mode=sidecar.mode,
            state=sidecar.state,
            started_by=sidecar.started_by,
            stop_code=sidecar.stop_code,
            stop_message=sidecar.stop.message if sidecar.stop else None,
            phases_passed=len(sidecar.phases_passed),
            waiting=None
            if gate is None
            else GateWait(
                gate=gate.gate,
                since=gate.opened_at,
                request_kb_id=gate.request_kb_id,
                request_digest=gate.request_digest,
                nonce=gate.nonce,
                approvals=len(gate.uses),
                required_approvals=gate.required_approvals,
            ),
            updated_at=sidecar.updated_at,
            started_by_principal=sidecar.started_by_principal,
            restore=sidecar.restore,
        )


class Reply(Frame, frozen=True, kw_only=True, tag_field="reply"):
    pass


class Pong(Reply, frozen=True, kw_only=True, tag="pong"):
    protocol: int = PROTOCOL_VERSION


class RunInfo(Reply, frozen=True, kw_only=True, tag="run"):
    run: RunSummary


class BackupList(Reply, frozen=True, kw_only=True, tag="backups"):
    """A document's stored backups, oldest first, each with the live runs that saved it."""

    doc_id: str
    backups: tuple[SavedBackup, ...]


class Accepted(Reply, frozen=True, kw_only=True, tag="accepted"):
    """The command was taken and goes on in the daemon; follow it with status or watch."""

    run_id: str


class RunList(Reply, frozen=True, kw_only=True, tag="runs"):
    """``next_cursor``: pass it back as ``cursor`` for the next page; null at the end."""

    runs: tuple[RunSummary, ...]
    # Runs whose stored record cannot be read (quarantined, ``cutter.core.quarantine``),
    # among those of this page's id range: never in ``runs``, whatever the state
    # filter; ``cutter doctor`` says more.
    unreadable: tuple[UnreadableRun, ...] = ()
    next_cursor: str | None = None


class ApprovalStored(Reply, frozen=True, kw_only=True, tag="approval_stored"):
    """``replayed``: this decision had been received and used before (a retry); it was
    not used again, and ``run`` is the run as it is now."""

    approval_kb_id: str
    run: RunSummary
    replayed: bool = False


class Review(Reply, frozen=True, kw_only=True, tag="review"):
    """The run and what its open gate authorises (``cutter.core.review.GateReview``)."""

    run: RunSummary
    review: GateReview


class KillSwitchState(Reply, frozen=True, kw_only=True, tag="kill_switch"):
    engaged: bool


class ShuttingDownReply(Reply, frozen=True, kw_only=True, tag="shutting_down"):
    pass


class PolicyInfo(Reply, frozen=True, kw_only=True, tag="policy"):
    """The policy in force. ``version`` 0: none was set; this is the default built
    from the daemon's options. ``principal``: who asked, as the daemon authenticated."""

    version: int
    policy: Policy
    set_by: str
    set_at: datetime
    principal: str | None


class Event(Reply, frozen=True, kw_only=True, tag="event"):
    """One transition of a run, as the structured log records it."""

    event: str
    run_id: str
    at: datetime
    detail: dict[str, str | int | bool | None] = {}


class ReviewLink(Reply, frozen=True, kw_only=True, tag="review_link"):
    """A minted link: whoever holds ``url`` may decide this request once, as
    ``principal``, until ``expires_at``."""

    url: str
    run_id: str
    gate: Gate
    request_digest: str
    principal: str
    expires_at: datetime


class Error(Reply, frozen=True, kw_only=True, tag="error"):
    code: ErrorCode  # closed: every code has its class (``cutter.core.errors.error_for``)
    message: str
    error_id: str | None = None


class NotificationList(Reply, frozen=True, kw_only=True, tag="notifications"):
    notices: tuple[NoticeRecord, ...]


AnyReply = (
    Pong
    | RunInfo
    | Accepted
    | RunList
    | ApprovalStored
    | Review
    | KillSwitchState
    | ShuttingDownReply
    | PolicyInfo
    | ReviewLink
    | NotificationList
    | BackupList
    | Event
    | Error
)

_command_decoder: msgspec.json.Decoder[AnyCommand] = msgspec.json.Decoder(AnyCommand)
_reply_decoder: msgspec.json.Decoder[AnyReply] = msgspec.json.Decoder(AnyReply)
_encoder = msgspec.json.Encoder()


class BadFrame(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def decode_command(line: bytes) -> AnyCommand:
    """One frame (without its newline) → a Command, or ``BadFrame`` saying why not."""
    try:
        command = _command_decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise BadFrame(ErrorCode.BAD_FRAME, f"invalid command: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadFrame(ErrorCode.BAD_FRAME, "not a JSON frame") from exc
    if command.v != PROTOCOL_VERSION:
        raise BadFrame(
            ErrorCode.PROTOCOL_VERSION, f"protocol version {command.v} is not {PROTOCOL_VERSION}"
        )
    return command


class _ErrorOfAnyCode(Reply, frozen=True, kw_only=True, tag="error"):
    code: str
    message: str
    error_id: str | None = None


_any_code_decoder = msgspec.json.Decoder(_ErrorOfAnyCode)


def decode_reply(line: bytes) -> AnyReply:
    """One reply frame. An ``error`` frame with a code this client does not know (a
    newer daemon's) is ``E_UNKNOWN_CODE`` carrying the daemon's code and message:
    the codes stay closed, and the operator still reads what the daemon said."""
    try:
        return _reply_decoder.decode(line)
    except msgspec.ValidationError:
        unknown = _any_code_decoder.decode(line)  # not an error frame either: raises
        return Error(
            v=unknown.v,
            id=unknown.id,
            code=ErrorCode.UNKNOWN_CODE,
            message=one_line(f"{unknown.code}: {unknown.message}"),
            error_id=unknown.error_id,
        )


def encode(frame: Frame) -> bytes:
    """One frame with its newline. msgspec JSON escapes newlines inside strings."""
    return _encoder.encode(frame) + b"\n"
