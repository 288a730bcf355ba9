"""Stop codes and the exception tree.

Every error a client or a KB doc can see carries a stable ``code``, a one-line
``message`` and, where something unexpected happened, an ``error_id`` that the
structured log expands into the full story. No traceback ever leaves the process.

    CutterError
    ├── InputError                       bad input; nothing was changed
    │   ├── InvalidIdentifier
    │   ├── CorruptRecord                a stored file or row cannot be decoded
    │   ├── UnknownRun
    │   ├── UnknownDocument              (raised by ports; the walk turns it into a stop)
    │   ├── DocumentNotText              binary or UTF-16/32 input (add-document, plan)
    │   ├── RunNotResumable
    │   ├── StateDirUnusable             a state directory cannot be created or locked
    │   └── PolicyInvalid                a policy file does not parse or check
    ├── DocumentBusy                     another run holds the document
    ├── StateDirBusy                     another process owns the state directory
    ├── StorageError                     a store cannot be written; nothing was half-written
    │   ├── StorageFull                  no space (ENOSPC) or quota (EDQUOT) left
    │   └── StorageReadOnly              read-only file system, or no permission to write
    ├── ShuttingDown                     the runner is draining
    ├── ProductionExecutionNotAuthorized
    ├── AccessDenied                     the policy does not let this principal do it
    │   ├── PrincipalUnknown             the transport authenticated nobody
    │   └── PrincipalMismatch            a declared name is not the principal's
    ├── Refusal                          a command was refused; the run is unchanged
    │   ├── RunNotAbortable
    │   ├── RunNotAtGate
    │   ├── RunChanged
    │   ├── KillSwitchEngaged
    │   └── GateRefusal                  an approval does not release the gate
    │       ├── StopApprovalRequired
    │       ├── ApprovalNotFound
    │       ├── ApprovalInvalid
    │       ├── ApprovalWrongRun
    │       ├── ApprovalWrongGate
    │       ├── ApprovalStale
    │       ├── ApprovalExpired
    │       ├── SelfApprovalRefused
    │       ├── DuplicateApprover
    │       ├── ApproverNotAllowed
    │       ├── PolicyUnreadable
    │       ├── ApprovalConsumedAlready
    │       ├── ApprovalRecoveryPending
    │       └── GateRequestDamaged       the stored request doc is not the one the run recorded
    └── PhaseStop                        a phase body ends the run with a stop code
        ├── StopDocumentUnknown
        ├── StopAlreadyCut
        ├── StopPlanInvalid
        ├── StopGrantMissing
        ├── StopVerifyFailed
        ├── StopContractViolated
        └── StopGateNotPassed            a write found its gate not passed by the policy
"""

from __future__ import annotations

import enum
import secrets
from typing import ClassVar


class StopCode(enum.StrEnum):
    """Why a run stopped. Part of the interface: never renamed, only added to."""

    APPROVAL_REQUIRED = "STOP_APPROVAL_REQUIRED"
    APPROVAL_REJECTED = "STOP_APPROVAL_REJECTED"
    DOCUMENT_UNKNOWN = "STOP_DOCUMENT_UNKNOWN"
    ALREADY_CUT = "STOP_ALREADY_CUT"
    DRIFT = "STOP_DRIFT"
    PLAN_INVALID = "STOP_PLAN_INVALID"
    GRANT_MISSING = "STOP_GRANT_MISSING"
    VERIFY_FAILED = "STOP_VERIFY_FAILED"
    CONTRACT_VIOLATED = "STOP_CONTRACT_VIOLATED"
    PHASE_FAILED = "STOP_PHASE_FAILED"
    OPERATOR_ABORT = "STOP_OPERATOR_ABORT"
    KILL_SWITCH = "STOP_KILL_SWITCH"
    GATE_NOT_PASSED = "STOP_GATE_NOT_PASSED"
    DOCUMENT_TOO_LARGE = "STOP_DOCUMENT_TOO_LARGE"


def new_error_id() -> str:
    """A short random id that ties a one-line error to its full log event."""
    return secrets.token_hex(6)


MESSAGE_LIMIT = 400  # long enough to name a file under a deep state directory


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Collapse whitespace and cut to ``limit`` characters: messages are one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class CutterError(Exception):
    """Root of every error iu-cutter raises on purpose."""

    code: ClassVar[str] = "E_CUTTER"

    def __init__(self, message: str) -> None:
        self.message = one_line(message)
        super().__init__(self.message)


class InputError(CutterError):
    code = "E_INPUT"


class SignatureMalformed(InputError):
    """A signature or public key that is not in the shape ``ssh-keygen`` writes."""

    code = "E_SIGNATURE_MALFORMED"


class InvalidIdentifier(InputError):
    code = "E_INVALID_ID"

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        super().__init__(f"invalid {kind}: {reason}")


class CorruptRecord(InputError):
    code = "E_CORRUPT_RECORD"

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        super().__init__(f"corrupt record {location}: {reason}")


class UnknownRun(InputError):
    code = "E_UNKNOWN_RUN"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id}")


class DocumentNotText(InputError):
    """A source that is binary or UTF-16/32: refused by add-document and plan."""

    code = "E_DOCUMENT_NOT_TEXT"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class UnknownDocument(InputError):
    code = "E_UNKNOWN_DOCUMENT"

    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        super().__init__(f"no document {doc_id}")


class DocumentTooLarge(InputError):
    """A document over ``cutter.doc_size.MAX_DOCUMENT_BYTES``: refused, nothing stored."""

    code = "E_DOCUMENT_TOO_LARGE"

    def __init__(self, size: int, limit: int, what: str = "the document") -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes, over the {limit}-byte document limit")


class RunNotResumable(InputError):
    code = "E_RUN_NOT_RESUMABLE"

    def __init__(self, run_id: str, state: str) -> None:
        self.run_id = run_id
        self.state = state
        super().__init__(f"run {run_id} is {state} and cannot be resumed")


class StateDirUnusable(InputError):
    """A state directory that cannot be created, opened or locked (a path below a
    regular file, no permission, a lock file that is a symlink…)."""

    code = "E_STATE_DIR_UNUSABLE"

    def __init__(self, state_dir: str, reason: str) -> None:
        self.state_dir = state_dir
        super().__init__(f"state directory {state_dir} cannot be used: {reason}")


class StateDirBusy(CutterError):
    """Another live process owns the state directory (``cutter.stores.owner``)."""

    code = "E_STATE_DIR_BUSY"

    def __init__(self, state_dir: str, held: str, pid: int | None, holder: str | None) -> None:
        self.state_dir = state_dir
        self.held = held  # the lock file (or the socket) the owner holds
        self.pid = pid  # None when the owner has not written its pid yet
        self.holder = holder
        who = f"pid {pid}" if pid is not None else "a process whose pid is not known yet"
        what = f" ({holder})" if holder else ""
        super().__init__(f"state directory {state_dir} is owned by {who}{what}, which holds {held}")


class StorageError(CutterError):
    """A write to a store failed for a reason outside the program (the disk, the
    mount, the permissions). The write was atomic: the old content is intact."""

    code = "E_STORAGE"

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        super().__init__(f"cannot write {location}: {reason}")


class StorageFull(StorageError):
    code = "E_STORAGE_FULL"


class StorageReadOnly(StorageError):
    code = "E_STORAGE_READ_ONLY"


class StorageCorrupt(StorageError):
    """The database file is damaged (a page ``quick_check`` flags, bytes that are not a
    database): nothing is read from it or written to it until it is restored."""

    code = "E_STORAGE_CORRUPT"

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        CutterError.__init__(self, f"damaged database {location}: {reason}")


class StorageBusy(StorageError):
    """Another process held the embedded database's write lock past the busy timeout:
    nothing of this write was applied; the same write may be retried."""

    code = "E_STORAGE_BUSY"


class ShuttingDown(CutterError):
    """The runner is draining: it takes no new command."""

    code = "E_SHUTTING_DOWN"

    def __init__(self) -> None:
        super().__init__("shutting down: no new commands are taken")


class DocumentBusy(CutterError):
    """Another open run holds this document: one open run per document, from its start
    until it ends in a terminal state (and one walk of it at a time)."""

    code = "STOP_DOCUMENT_BUSY"

    def __init__(self, doc_id: str, holder: str) -> None:
        self.doc_id = doc_id
        self.holder = holder
        super().__init__(f"document {doc_id} is held by {holder}")


class ProductionExecutionNotAuthorized(CutterError):
    code = "E_EXECUTION_NOT_AUTHORIZED"

    def __init__(self) -> None:
        super().__init__("Mode.LIVE refused: live execution is not enabled")


class PolicyInvalid(InputError):
    """A policy file does not parse, or names what no principal could be."""

    code = "E_POLICY_INVALID"

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid policy: {reason}")


class AccessDenied(CutterError):
    """The policy does not let the authenticated principal do this; nothing changed."""

    code = "E_NOT_PERMITTED"


class PrincipalUnknown(AccessDenied):
    """The transport proved no usable principal (no peer credentials, a login
    name outside the principal alphabet)."""

    code = "E_PRINCIPAL_UNKNOWN"


class PrincipalMismatch(AccessDenied):
    """A declared name (``started_by``, ``approver``, ``by``) is not the
    authenticated principal, and the policy names that principal no relay."""

    code = "E_PRINCIPAL_MISMATCH"


class Refusal(CutterError):
    """A command on a run was refused; the run stays exactly as it was."""

    code = "E_REFUSED"

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)


class RunNotAbortable(Refusal):
    code = "E_RUN_NOT_ABORTABLE"


class RunChanged(Refusal):
    """The stored run is not the one this walk holds: another walker moved it."""

    code = "E_RUN_CHANGED"


class RunNotAtGate(Refusal):
    code = "E_RUN_NOT_AT_GATE"


class KillSwitchEngaged(Refusal):
    code = StopCode.KILL_SWITCH.value


class GateRefusal(Refusal):
    """An approval does not release the gate the run waits at."""

    code = "E_GATE_REFUSED"


class StopApprovalRequired(GateRefusal):
    code = StopCode.APPROVAL_REQUIRED.value


class ApprovalNotFound(GateRefusal):
    code = "APPROVAL_NOT_FOUND"


class ApprovalInvalid(GateRefusal):
    code = "APPROVAL_INVALID"


class ApprovalWrongRun(GateRefusal):
    code = "APPROVAL_WRONG_RUN"


class ApprovalWrongGate(GateRefusal):
    code = "APPROVAL_WRONG_GATE"


class ApprovalStale(GateRefusal):
    code = "APPROVAL_STALE"


class ApprovalExpired(GateRefusal):
    code = "APPROVAL_EXPIRED"


class SelfApprovalRefused(GateRefusal):
    code = "APPROVAL_SELF"


class DuplicateApprover(GateRefusal):
    code = "APPROVAL_DUPLICATE_APPROVER"


class ApproverNotAllowed(GateRefusal):
    """The policy does not name this approver for this gate of this document."""

    code = "APPROVAL_NOT_ALLOWED"


class PolicyUnreadable(GateRefusal):
    """The stored policy cannot be read: no gate is passed under a guessed one."""

    code = "E_POLICY_UNREADABLE"


class ApprovalSignatureRequired(GateRefusal):
    """The gate accepts only a reviewer's signature, and the approval carries none."""

    code = "APPROVAL_SIGNATURE_REQUIRED"


class ApprovalSignatureInvalid(GateRefusal):
    """The approval's signature does not verify against the policy's keys for its
    approver over this decision (another key, another decision, damaged bytes)."""

    code = "APPROVAL_SIGNATURE_INVALID"


class ApprovalConsumedAlready(GateRefusal):
    code = "APPROVAL_CONSUMED_ALREADY"

    def __init__(self, run_id: str, approval_kb_id: str) -> None:
        self.approval_kb_id = approval_kb_id
        super().__init__(run_id, f"approval {approval_kb_id} was consumed already")


class ApprovalRecoveryPending(GateRefusal):
    """Another approval this run consumed before a crash is not yet recorded: it is
    finished first (start-up recovery, or a resume with it), never passed by."""

    code = "APPROVAL_RECOVERY_PENDING"


class GateRequestDamaged(GateRefusal):
    """The gate's stored request doc is missing, unreadable or not the request the run
    recorded (its subject does not hash to the recorded digest): no approval is taken
    for a request nobody can show was the one reviewed."""

    code = "GATE_REQUEST_DAMAGED"


def refusal(run_id: str, code: str, message: str, approval_kb_id: str | None = None) -> Refusal:
    """Rebuild the typed refusal an actor replied with as a code and a message."""
    if code == ApprovalConsumedAlready.code and approval_kb_id is not None:
        return ApprovalConsumedAlready(run_id, approval_kb_id)
    for cls in _REFUSALS:
        if cls.code == code:
            return cls(run_id, message)
    return Refusal(run_id, message)


_REFUSALS: tuple[type[Refusal], ...] = (
    RunNotAbortable,
    RunNotAtGate,
    RunChanged,
    KillSwitchEngaged,
    StopApprovalRequired,
    ApprovalNotFound,
    ApprovalInvalid,
    ApprovalWrongRun,
    ApprovalWrongGate,
    ApprovalStale,
    ApprovalExpired,
    SelfApprovalRefused,
    DuplicateApprover,
    ApproverNotAllowed,
    PolicyUnreadable,
    ApprovalRecoveryPending,
    ApprovalSignatureRequired,
    ApprovalSignatureInvalid,
    GateRequestDamaged,
)


class PhaseStop(CutterError):
    """Raised by a phase body: the run stops with ``stop_code``; nothing leaks."""

    stop_code: ClassVar[StopCode] = StopCode.PHASE_FAILED

    @property
    def code_value(self) -> str:
        return self.stop_code.value


class StopDocumentUnknown(PhaseStop):
    code = StopCode.DOCUMENT_UNKNOWN.value
    stop_code = StopCode.DOCUMENT_UNKNOWN


class StopAlreadyCut(PhaseStop):
    code = StopCode.ALREADY_CUT.value
    stop_code = StopCode.ALREADY_CUT


class StopPlanInvalid(PhaseStop):
    code = StopCode.PLAN_INVALID.value
    stop_code = StopCode.PLAN_INVALID


class StopGrantMissing(PhaseStop):
    code = StopCode.GRANT_MISSING.value
    stop_code = StopCode.GRANT_MISSING


class StopVerifyFailed(PhaseStop):
    code = StopCode.VERIFY_FAILED.value
    stop_code = StopCode.VERIFY_FAILED


class StopContractViolated(PhaseStop):
    code = StopCode.CONTRACT_VIOLATED.value
    stop_code = StopCode.CONTRACT_VIOLATED


class StopDocumentTooLarge(PhaseStop):
    code = StopCode.DOCUMENT_TOO_LARGE.value
    stop_code = StopCode.DOCUMENT_TOO_LARGE


class StopGateNotPassed(PhaseStop):
    """A phase about to write re-checked its gate against the policy and the KB (not
    the run's stored copy of the rule) and found it not passed."""

    code = StopCode.GATE_NOT_PASSED.value
    stop_code = StopCode.GATE_NOT_PASSED
