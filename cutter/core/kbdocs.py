"""Documents the orchestrator writes to or reads from the knowledge base.

One closed tagged union, ``KBDoc``, decoded strictly at the KB boundary.
Approvals come from outside (reviewers' scripts), so every field is checked.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

import msgspec

from cutter.core.canonical import digest
from cutter.core.errors import ErrorCode, StopCode
from cutter.core.hook_names import HookEvent
from cutter.core.mode import Mode
from cutter.core.policy import Policy
from cutter.core.records import Candidate, Manifest
from cutter.core.restoring import RestorePlan
from cutter.core.route import Gate, Phase, Pin, PinValue
from cutter.core.states import Rollback


class Doc(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    run_id: str


class PhaseDoc(Doc, frozen=True, kw_only=True, tag="phase"):
    phase: Phase
    ordinal: int
    mode: Mode
    passed_at: datetime
    pins_added: dict[Pin, PinValue]
    note: str = ""
    candidates: tuple[Candidate, ...] = ()
    manifest: Manifest | None = None
    restore_plan: RestorePlan | None = None  # a restore run's cutplan (docs/revert.md)


class RequestSubject(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Exactly what a gate authorises; the request digest is taken over this."""

    run_id: str
    gate: Gate
    mode: Mode
    doc_id: str
    started_by: str
    source_version_id: str
    source_sha: str
    manifest_digest: str
    iu_count: int
    writer_digest: str
    verify_result_id: str | None
    nonce: str
    opened_at: datetime

    @property
    def request_digest(self) -> str:
        return digest(self)


class SovereignRequest(Doc, frozen=True, kw_only=True, tag="sovereign_request"):
    subject: RequestSubject
    request_digest: str
    required_approvals: int


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class Approval(Doc, frozen=True, kw_only=True, tag="approval"):
    gate: Gate
    request_digest: str
    nonce: str
    decision: Decision
    approver: str
    reason: str
    issued_at: datetime
    review_decision_id: str | None = None
    # The principal the daemon authenticated when it stored this decision: the
    # approver itself, or a relay that forwarded it for ``approver``. None: not
    # stored through the daemon (older approvals, hand-written ones).
    principal: str | None = None
    # The approver's armored SSH signature over ``cutter.core.signing.approval_payload``
    # of this decision; None: unsigned. Checked by the gatekeeper against the
    # policy's keys for ``approver``, never trusted for being here.
    signature: str | None = None
    # "web": stored by the daemon from a one-time review-page link it minted for
    # ``principal`` (``cutter.web``); the gate takes it only if its ``proofs`` list
    # "web". None: stored over the socket (or not by the daemon at all).
    via: Literal["web"] | None = None


class ApprovalRefusal(Doc, frozen=True, kw_only=True, tag="approval_refusal"):
    gate: Gate
    approval_kb_id: str | None
    code: ErrorCode
    message: str
    peer: str | None
    at: datetime


class StopDoc(Doc, frozen=True, kw_only=True, tag="stop"):
    doc_id: str
    code: StopCode
    message: str
    error_id: str | None
    at: datetime
    # A live run's writes being undone (pending) or undone (done); None: nothing to undo.
    rollback: Rollback | None = None


AnchorKind = Literal["cut", "rollback", "revert"]


class LedgerAnchor(Doc, frozen=True, kw_only=True, tag="ledger_anchor"):
    """Where a run's ledger entry stands, kept outside the ledger (docs/ledger.md §8).

    Written when the run's entry is appended (the cut by ``leg_b_record``, a
    rollback by ``rollback``), confirmed by ``closeout``, checked by
    ``cutter verify-ledger``. A pure function of the entry: replays write the
    same bytes."""

    doc_id: str
    kind: AnchorKind  # the envelope's kind
    seq: int
    entry_hash: str
    envelope_sha: str  # sha256 of the envelope's canonical bytes


class CloseoutReport(Doc, frozen=True, kw_only=True, tag="closeout_report"):
    doc_id: str
    mode: Mode
    pins: dict[Pin, PinValue]
    phase_docs: tuple[str, ...]
    approvals: tuple[str, ...]
    closed_at: datetime
    ledger_anchor: LedgerAnchor | None = None  # a live run's cut, confirmed at closeout


class RunsIndexEntry(Doc, frozen=True, kw_only=True, tag="runs_index_entry"):
    doc_id: str
    mode: Mode
    state: str
    iu_count: int
    change_set_id: str
    closeout_kb_id: str
    closed_at: datetime


class PolicyVersion(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="type",
    tag="policy_version",
):
    """One version of the policy (``cutter.core.policy``), as the admin principal who set
    it set it. Kept twice: at ``policy/changes/<version>-<digest>`` (the record of every
    change, never rewritten) and at ``policy/current`` (what the daemon enforces)."""

    version: int
    policy: Policy
    set_by: str
    set_at: datetime


class HookRecord(Doc, frozen=True, kw_only=True, tag="hook_record"):
    """One run of one hook (``cutter.walk.hooks``), what it printed bounded: written in
    both modes, at ``hook_record_id``. ``exit_code`` None: it was killed at its
    timeout (``timed_out``) or could not be started (``failure`` says why)."""

    doc_id: str
    mode: Mode
    event: HookEvent
    hook: str
    source: str  # "directory" or "policy"
    exit_code: int | None
    timed_out: bool
    failure: str | None
    stdout: str
    stderr: str
    duration_ms: int
    at: datetime


KBDoc = (
    PhaseDoc
    | SovereignRequest
    | Approval
    | ApprovalRefusal
    | StopDoc
    | CloseoutReport
    | RunsIndexEntry
    | LedgerAnchor
    | PolicyVersion
    | HookRecord
)


# Where each document lives. One place, so every store agrees.
def phase_doc_id(run_id: str, phase: Phase, ordinal: int) -> str:
    return f"runs/{run_id}/phases/{ordinal:02d}-{phase.value}"


def request_doc_id(run_id: str, gate: Gate) -> str:
    return f"runs/{run_id}/gates/{gate.value}/request"


def refusal_doc_id(run_id: str, error_id: str) -> str:
    return f"runs/{run_id}/refusals/{error_id}"


def stop_doc_id(run_id: str) -> str:
    return f"runs/{run_id}/stop"


def closeout_doc_id(run_id: str) -> str:
    return f"runs/{run_id}/closeout"


def runs_index_id(run_id: str) -> str:
    return f"runs-index/{run_id}"


HOOKS_PREFIX = "hooks"


def hook_records_prefix(run_id: str, event: HookEvent) -> str:
    return f"{HOOKS_PREFIX}/{run_id}/{event.value}"


def hook_record_id(run_id: str, event: HookEvent, n: int) -> str:
    """The ``n``-th (from 1) hook run of ``event`` for this run."""
    return f"{hook_records_prefix(run_id, event)}/{n:04d}"


POLICY_CURRENT = "policy/current"


def policy_change_id(change: PolicyVersion) -> str:
    """Where a change is recorded: by version, then by its own digest, so two
    processes that set version N at once (two daemons on one database) both leave
    their record rather than one overwriting the other."""
    return f"policy/changes/{change.version:06d}-{digest(change)[:16]}"


ANCHORS_PREFIX = "ledger-anchors"


def anchor_doc_id(run_id: str, kind: AnchorKind) -> str:
    return f"{ANCHORS_PREFIX}/{run_id}/{kind}"


def under_prefix(kb_id: str, prefix: str) -> bool:
    """``list`` semantics: the prefix doc itself and every doc below it ("" is all)."""
    return not prefix or kb_id == prefix or kb_id.startswith(prefix + "/")
