"""Stop codes and the exception tree.

Every error a client or a KB doc can see carries a stable ``code``, a one-line
``message`` and, where something unexpected happened, an ``error_id`` that the
structured log expands into the full story. No traceback ever leaves the process.

The codes are closed: every ``code`` is an ``ErrorCode`` member that its class
registers when it is defined, one class per code (a duplicate fails at import), and
``error_for`` rebuilds the class from the code. A refusal an actor replies with is a
``RefusalInfo``; the runner raises it with ``raise_refusal``.

    CutterError
    ├── InputError                       bad input; nothing was changed
    │   ├── InvalidIdentifier
    │   ├── CorruptRecord                a stored file or row cannot be decoded
    │   ├── UnknownRun
    │   ├── UnknownDocument              (raised by ports; the walk turns it into a stop)
    │   ├── DocumentNotText              binary or UTF-16/32 input (add-document, plan)
    │   ├── RunNotResumable
    │   ├── StateDirUnusable             a state directory cannot be created or locked
    │   ├── PolicyInvalid                a policy file does not parse or check
    │   ├── NotRevertible                a revert of a run that is not a closed-out live run
    │   ├── RevertRefused                a revert of a run whose document changed since
    │   └── BackupUnknown                a restore from a backup the document does not have
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
        ├── StopGateNotPassed            a write found its gate not passed by the policy
        ├── StopHookVetoed               a before_* hook exited non-zero
        ├── StopHookTimeout              a before_* hook outlived its timeout (killed)
        └── StopHookFailed               a before_* hook could not be started or trusted

    HooksDirUnsafe (an InputError)       a hooks directory others could write to
"""

from __future__ import annotations

import enum
import secrets
from typing import ClassVar, NoReturn

import msgspec


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
    HOOK_VETOED = "STOP_HOOK_VETOED"
    HOOK_TIMEOUT = "STOP_HOOK_TIMEOUT"
    HOOK_FAILED = "STOP_HOOK_FAILED"


class ErrorCode(enum.StrEnum):
    """The code of every ``CutterError`` and of every ``error`` frame: closed. Each
    member is the code of exactly one exception class, which registers it when it is
    defined (``CutterError.__init_subclass__``); ``error_for`` rebuilds that class from
    the code. Part of the interface: a value is never renamed, only added to (with its
    class). A member's name is its value without a leading ``E_``."""

    # cutter.core.errors
    CUTTER = "E_CUTTER"
    INPUT = "E_INPUT"
    SIGNATURE_MALFORMED = "E_SIGNATURE_MALFORMED"
    INVALID_ID = "E_INVALID_ID"
    CORRUPT_RECORD = "E_CORRUPT_RECORD"
    UNKNOWN_RUN = "E_UNKNOWN_RUN"
    DOCUMENT_NOT_TEXT = "E_DOCUMENT_NOT_TEXT"
    UNKNOWN_DOCUMENT = "E_UNKNOWN_DOCUMENT"
    DOCUMENT_TOO_LARGE = "E_DOCUMENT_TOO_LARGE"
    RUN_NOT_RESUMABLE = "E_RUN_NOT_RESUMABLE"
    STATE_DIR_UNUSABLE = "E_STATE_DIR_UNUSABLE"
    POLICY_INVALID = "E_POLICY_INVALID"
    STATE_DIR_BUSY = "E_STATE_DIR_BUSY"
    STORAGE = "E_STORAGE"
    STORAGE_FULL = "E_STORAGE_FULL"
    STORAGE_READ_ONLY = "E_STORAGE_READ_ONLY"
    STORAGE_CORRUPT = "E_STORAGE_CORRUPT"
    STORAGE_BUSY = "E_STORAGE_BUSY"
    SHUTTING_DOWN = "E_SHUTTING_DOWN"
    STOP_DOCUMENT_BUSY = "STOP_DOCUMENT_BUSY"
    EXECUTION_NOT_AUTHORIZED = "E_EXECUTION_NOT_AUTHORIZED"
    NOT_PERMITTED = "E_NOT_PERMITTED"
    PRINCIPAL_UNKNOWN = "E_PRINCIPAL_UNKNOWN"
    PRINCIPAL_MISMATCH = "E_PRINCIPAL_MISMATCH"
    REFUSED = "E_REFUSED"
    RUN_NOT_ABORTABLE = "E_RUN_NOT_ABORTABLE"
    RUN_CHANGED = "E_RUN_CHANGED"
    RUN_NOT_AT_GATE = "E_RUN_NOT_AT_GATE"
    STOP_KILL_SWITCH = "STOP_KILL_SWITCH"
    GATE_REFUSED = "E_GATE_REFUSED"
    STOP_APPROVAL_REQUIRED = "STOP_APPROVAL_REQUIRED"
    APPROVAL_NOT_FOUND = "APPROVAL_NOT_FOUND"
    APPROVAL_INVALID = "APPROVAL_INVALID"
    APPROVAL_WRONG_RUN = "APPROVAL_WRONG_RUN"
    APPROVAL_WRONG_GATE = "APPROVAL_WRONG_GATE"
    APPROVAL_STALE = "APPROVAL_STALE"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    APPROVAL_SELF = "APPROVAL_SELF"
    APPROVAL_DUPLICATE_APPROVER = "APPROVAL_DUPLICATE_APPROVER"
    APPROVAL_NOT_ALLOWED = "APPROVAL_NOT_ALLOWED"
    POLICY_UNREADABLE = "E_POLICY_UNREADABLE"
    APPROVAL_SIGNATURE_REQUIRED = "APPROVAL_SIGNATURE_REQUIRED"
    APPROVAL_SIGNATURE_INVALID = "APPROVAL_SIGNATURE_INVALID"
    APPROVAL_CONSUMED_ALREADY = "APPROVAL_CONSUMED_ALREADY"
    APPROVAL_RECOVERY_PENDING = "APPROVAL_RECOVERY_PENDING"
    GATE_REQUEST_DAMAGED = "GATE_REQUEST_DAMAGED"
    STOP_DOCUMENT_UNKNOWN = "STOP_DOCUMENT_UNKNOWN"
    STOP_ALREADY_CUT = "STOP_ALREADY_CUT"
    STOP_PLAN_INVALID = "STOP_PLAN_INVALID"
    STOP_GRANT_MISSING = "STOP_GRANT_MISSING"
    STOP_VERIFY_FAILED = "STOP_VERIFY_FAILED"
    STOP_CONTRACT_VIOLATED = "STOP_CONTRACT_VIOLATED"
    STOP_DOCUMENT_TOO_LARGE = "STOP_DOCUMENT_TOO_LARGE"
    STOP_GATE_NOT_PASSED = "STOP_GATE_NOT_PASSED"
    STOP_HOOK_VETOED = "STOP_HOOK_VETOED"
    STOP_HOOK_TIMEOUT = "STOP_HOOK_TIMEOUT"
    STOP_HOOK_FAILED = "STOP_HOOK_FAILED"
    HOOKS_DIR_UNSAFE = "E_HOOKS_DIR_UNSAFE"
    NOT_REVERTIBLE = "E_NOT_REVERTIBLE"
    REVERT_REFUSED = "E_REVERT_REFUSED"
    BACKUP_UNKNOWN = "E_BACKUP_UNKNOWN"
    # cutter.daemon.client
    DAEMON_UNAVAILABLE = "E_DAEMON_UNAVAILABLE"
    REPLY_TOO_LARGE = "E_REPLY_TOO_LARGE"
    # cutter.stores.pg.connect
    STORE_UNAVAILABLE = "E_STORE_UNAVAILABLE"
    RECORD_REFUSED = "E_RECORD_REFUSED"
    # cutter.stores.pg.logins
    ROLE_MISSING = "E_ROLE_MISSING"
    # cutter.stores.pg.migrate
    MIGRATION_REFUSED = "E_MIGRATION_REFUSED"
    # cutter.core.run_pages
    BAD_CURSOR = "E_BAD_CURSOR"
    BAD_LIMIT = "E_BAD_LIMIT"
    # cutter.core.secrets
    DSN_INVALID = "E_DSN_INVALID"
    # cutter.runtime.sshsig
    SIGNING_FAILED = "E_SIGNING_FAILED"
    # cutter.web.errors
    HTTP_ADDRESS_REFUSED = "E_HTTP_ADDRESS_REFUSED"
    HTTP_NOT_SERVING = "E_HTTP_NOT_SERVING"
    WEB_PROOF_NOT_ACCEPTED = "E_WEB_PROOF_NOT_ACCEPTED"
    WEB_REFUSED = "E_WEB_REFUSED"
    LINK_INVALID = "E_LINK_INVALID"
    LINK_EXPIRED = "E_LINK_EXPIRED"
    LINK_USED = "E_LINK_USED"
    LINK_WRONG_RUN = "E_LINK_WRONG_RUN"
    LINK_STALE = "E_LINK_STALE"
    CSRF_INVALID = "E_CSRF_INVALID"
    FORM_TOO_LARGE = "E_FORM_TOO_LARGE"
    FORM_INVALID = "E_FORM_INVALID"
    NOT_FOUND = "E_NOT_FOUND"
    HTTP_PORT_BUSY = "E_HTTP_PORT_BUSY"
    # cutter.core.wire_errors: the protocol's and the client's own codes
    BAD_FRAME = "E_BAD_FRAME"
    PROTOCOL_VERSION = "E_PROTOCOL_VERSION"
    FRAME_TOO_LARGE = "E_FRAME_TOO_LARGE"
    WATCH_LAGGED = "E_WATCH_LAGGED"
    TOO_MANY_CONNECTIONS = "E_TOO_MANY_CONNECTIONS"
    IDLE_TIMEOUT = "E_IDLE_TIMEOUT"
    FRAME_TIMEOUT = "E_FRAME_TIMEOUT"
    BUFFER_BUDGET_EXCEEDED = "E_BUFFER_BUDGET_EXCEEDED"
    INTERNAL = "E_INTERNAL"
    REVIEW_TOO_LARGE = "E_REVIEW_TOO_LARGE"
    BAD_REPLY = "E_BAD_REPLY"
    UNKNOWN_CODE = "E_UNKNOWN_CODE"
    USAGE = "E_USAGE"
    BAD_REQUEST_DIGEST = "E_BAD_REQUEST_DIGEST"
    REVIEW_DECISION_REQUIRED = "E_REVIEW_DECISION_REQUIRED"
    # cutter.core.outbox, cutter.runtime.secret_files: notifications (docs/notifications.md)
    NOTIFICATION_FILTER = "E_NOTIFICATION_FILTER"
    SECRET_FILE_UNREADABLE = "E_SECRET_FILE_UNREADABLE"


def new_error_id() -> str:
    """A short random id that ties a one-line error to its full log event."""
    return secrets.token_hex(6)


MESSAGE_LIMIT = 400  # long enough to name a file under a deep state directory


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Collapse whitespace and cut to ``limit`` characters: messages are one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_CLASSES: dict[ErrorCode, type[CutterError]] = {}


class CutterError(Exception):
    """Root of every error iu-cutter raises on purpose.

    A subclass that sets ``code`` registers it as it is defined: the code must be an
    ``ErrorCode`` member no other class holds, or the import fails. A subclass that
    does not set one (``PhaseStop``) shares its parent's and registers nothing."""

    code: ClassVar[ErrorCode] = ErrorCode.CUTTER
    error_id: str | None = None  # set where the one line has a log event behind it

    def __init__(self, message: str) -> None:
        self.message = one_line(message)
        super().__init__(self.message)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _register(cls)


def _register(cls: type[CutterError]) -> None:
    code = cls.__dict__["code"]
    if not isinstance(code, ErrorCode):
        raise TypeError(f"{cls.__qualname__}.code {code!r} is not an ErrorCode member")
    held = _CLASSES.get(code)
    if held is not None:
        raise TypeError(f"{cls.__qualname__}.code {code} is {held.__qualname__}'s already")
    _CLASSES[code] = cls


_register(CutterError)


def error_class(code: ErrorCode) -> type[CutterError]:
    """The one class registered for ``code``. Every member has one once its module is
    imported: this one's for the walk's refusals, ``cutter.daemon.error_classes`` for all."""
    try:
        return _CLASSES[code]
    except KeyError:
        raise LookupError(f"{code} has no class yet: import cutter.daemon.error_classes") from None


def registered() -> dict[ErrorCode, type[CutterError]]:
    """Every code and its class, as registered so far."""
    return dict(_CLASSES)


def error_for(
    code: ErrorCode,
    message: str,
    *,
    run_id: str | None = None,
    approval_kb_id: str | None = None,
    error_id: str | None = None,
) -> CutterError:
    """The registered class of ``code`` with ``message``, rebuilt where only the code
    and the one line travelled (an actor's ``RefusalInfo``, an ``error`` frame). Its
    constructor is bypassed and the message kept exactly (it is the one line the
    original made); ``run_id`` and ``approval_kb_id`` are restored on the refusals
    that carry them."""
    cls = error_class(code)
    exc = cls.__new__(cls)
    exc.message = message
    Exception.__init__(exc, message)
    exc.error_id = error_id
    if isinstance(exc, Refusal):
        exc.run_id = run_id or ""
    if isinstance(exc, ApprovalConsumedAlready):
        exc.approval_kb_id = approval_kb_id or ""
    return exc


class RefusalInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A refusal as it travels, in this one form, from the gatekeeper's reply through
    the supervisor's to the runner, which raises it (``raise_refusal``)."""

    code: ErrorCode
    message: str
    approval_kb_id: str | None = None


def raise_refusal(run_id: str, info: RefusalInfo) -> NoReturn:
    """Raise the registered class of a refusal an actor replied with."""
    raise error_for(info.code, info.message, run_id=run_id, approval_kb_id=info.approval_kb_id)


class InputError(CutterError):
    code = ErrorCode.INPUT


class SignatureMalformed(InputError):
    """A signature or public key that is not in the shape ``ssh-keygen`` writes."""

    code = ErrorCode.SIGNATURE_MALFORMED


class InvalidIdentifier(InputError):
    code = ErrorCode.INVALID_ID

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        super().__init__(f"invalid {kind}: {reason}")


class CorruptRecord(InputError):
    code = ErrorCode.CORRUPT_RECORD

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"corrupt record {location}: {reason}")


class UnknownRun(InputError):
    code = ErrorCode.UNKNOWN_RUN

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id}")


class DocumentNotText(InputError):
    """A source that is binary or UTF-16/32: refused by add-document and plan."""

    code = ErrorCode.DOCUMENT_NOT_TEXT

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class UnknownDocument(InputError):
    code = ErrorCode.UNKNOWN_DOCUMENT

    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        super().__init__(f"no document {doc_id}")


class DocumentTooLarge(InputError):
    """A document over ``cutter.core.doc_size.MAX_DOCUMENT_BYTES``: refused, nothing stored."""

    code = ErrorCode.DOCUMENT_TOO_LARGE

    def __init__(self, size: int, limit: int, what: str = "the document") -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes, over the {limit}-byte document limit")


class RunNotResumable(InputError):
    code = ErrorCode.RUN_NOT_RESUMABLE

    def __init__(self, run_id: str, state: str) -> None:
        self.run_id = run_id
        self.state = state
        super().__init__(f"run {run_id} is {state} and cannot be resumed")


class StateDirUnusable(InputError):
    """A state directory that cannot be created, opened or locked (a path below a
    regular file, no permission, a lock file that is a symlink…)."""

    code = ErrorCode.STATE_DIR_UNUSABLE

    def __init__(self, state_dir: str, reason: str) -> None:
        self.state_dir = state_dir
        super().__init__(f"state directory {state_dir} cannot be used: {reason}")


class StateDirBusy(CutterError):
    """Another live process owns the state directory (``cutter.stores.owner``)."""

    code = ErrorCode.STATE_DIR_BUSY

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

    code = ErrorCode.STORAGE

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        super().__init__(f"cannot write {location}: {reason}")


class StorageFull(StorageError):
    code = ErrorCode.STORAGE_FULL


class StorageReadOnly(StorageError):
    code = ErrorCode.STORAGE_READ_ONLY


class StorageCorrupt(StorageError):
    """The database file is damaged (a page ``quick_check`` flags, bytes that are not a
    database): nothing is read from it or written to it until it is restored."""

    code = ErrorCode.STORAGE_CORRUPT

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        CutterError.__init__(self, f"damaged database {location}: {reason}")


class StorageBusy(StorageError):
    """Another process held the embedded database's write lock past the busy timeout:
    nothing of this write was applied; the same write may be retried."""

    code = ErrorCode.STORAGE_BUSY


class ShuttingDown(CutterError):
    """The runner is draining: it takes no new command."""

    code = ErrorCode.SHUTTING_DOWN

    def __init__(self) -> None:
        super().__init__("shutting down: no new commands are taken")


class DocumentBusy(CutterError):
    """Another open run holds this document: one open run per document, from its start
    until it ends in a terminal state (and one walk of it at a time)."""

    code = ErrorCode.STOP_DOCUMENT_BUSY

    def __init__(self, doc_id: str, holder: str) -> None:
        self.doc_id = doc_id
        self.holder = holder
        super().__init__(f"document {doc_id} is held by {holder}")


class ProductionExecutionNotAuthorized(CutterError):
    code = ErrorCode.EXECUTION_NOT_AUTHORIZED

    def __init__(self) -> None:
        super().__init__("Mode.LIVE refused: live execution is not enabled")


class PolicyInvalid(InputError):
    """A policy file does not parse, or names what no principal could be."""

    code = ErrorCode.POLICY_INVALID

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid policy: {reason}")


class AccessDenied(CutterError):
    """The policy does not let the authenticated principal do this; nothing changed."""

    code = ErrorCode.NOT_PERMITTED


class PrincipalUnknown(AccessDenied):
    """The transport proved no usable principal (no peer credentials, a login
    name outside the principal alphabet)."""

    code = ErrorCode.PRINCIPAL_UNKNOWN


class PrincipalMismatch(AccessDenied):
    """A declared name (``started_by``, ``approver``, ``by``) is not the
    authenticated principal, and the policy names that principal no relay."""

    code = ErrorCode.PRINCIPAL_MISMATCH


class Refusal(CutterError):
    """A command on a run was refused; the run stays exactly as it was."""

    code = ErrorCode.REFUSED

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)

    def info(self, approval_kb_id: str | None = None) -> RefusalInfo:
        """This refusal as an actor replies with it."""
        return RefusalInfo(code=self.code, message=self.message, approval_kb_id=approval_kb_id)


class RunNotAbortable(Refusal):
    code = ErrorCode.RUN_NOT_ABORTABLE


class RunChanged(Refusal):
    """The stored run is not the one this walk holds: another walker moved it."""

    code = ErrorCode.RUN_CHANGED


class RunNotAtGate(Refusal):
    code = ErrorCode.RUN_NOT_AT_GATE


class KillSwitchEngaged(Refusal):
    code = ErrorCode.STOP_KILL_SWITCH


class GateRefusal(Refusal):
    """An approval does not release the gate the run waits at."""

    code = ErrorCode.GATE_REFUSED


class StopApprovalRequired(GateRefusal):
    code = ErrorCode.STOP_APPROVAL_REQUIRED


class ApprovalNotFound(GateRefusal):
    code = ErrorCode.APPROVAL_NOT_FOUND


class ApprovalInvalid(GateRefusal):
    code = ErrorCode.APPROVAL_INVALID


class ApprovalWrongRun(GateRefusal):
    code = ErrorCode.APPROVAL_WRONG_RUN


class ApprovalWrongGate(GateRefusal):
    code = ErrorCode.APPROVAL_WRONG_GATE


class ApprovalStale(GateRefusal):
    code = ErrorCode.APPROVAL_STALE


class ApprovalExpired(GateRefusal):
    code = ErrorCode.APPROVAL_EXPIRED


class SelfApprovalRefused(GateRefusal):
    code = ErrorCode.APPROVAL_SELF


class DuplicateApprover(GateRefusal):
    code = ErrorCode.APPROVAL_DUPLICATE_APPROVER


class ApproverNotAllowed(GateRefusal):
    """The policy does not name this approver for this gate of this document."""

    code = ErrorCode.APPROVAL_NOT_ALLOWED


class PolicyUnreadable(GateRefusal):
    """The stored policy cannot be read: no gate is passed under a guessed one."""

    code = ErrorCode.POLICY_UNREADABLE


class ApprovalSignatureRequired(GateRefusal):
    """The gate accepts only a reviewer's signature, and the approval carries none."""

    code = ErrorCode.APPROVAL_SIGNATURE_REQUIRED


class ApprovalSignatureInvalid(GateRefusal):
    """The approval's signature does not verify against the policy's keys for its
    approver over this decision (another key, another decision, damaged bytes)."""

    code = ErrorCode.APPROVAL_SIGNATURE_INVALID


class ApprovalConsumedAlready(GateRefusal):
    code = ErrorCode.APPROVAL_CONSUMED_ALREADY

    def __init__(self, run_id: str, approval_kb_id: str) -> None:
        self.approval_kb_id = approval_kb_id
        super().__init__(run_id, f"approval {approval_kb_id} was consumed already")


class ApprovalRecoveryPending(GateRefusal):
    """Another approval this run consumed before a crash is not yet recorded: it is
    finished first (start-up recovery, or a resume with it), never passed by."""

    code = ErrorCode.APPROVAL_RECOVERY_PENDING


class GateRequestDamaged(GateRefusal):
    """The gate's stored request doc is missing, unreadable or not the request the run
    recorded (its subject does not hash to the recorded digest): no approval is taken
    for a request nobody can show was the one reviewed."""

    code = ErrorCode.GATE_REQUEST_DAMAGED


class PhaseStop(CutterError):
    """Raised by a phase body: the run stops with ``stop_code``; nothing leaks."""

    stop_code: ClassVar[StopCode] = StopCode.PHASE_FAILED

    @property
    def code_value(self) -> str:
        return self.stop_code.value


class StopDocumentUnknown(PhaseStop):
    code = ErrorCode.STOP_DOCUMENT_UNKNOWN
    stop_code = StopCode.DOCUMENT_UNKNOWN


class StopAlreadyCut(PhaseStop):
    code = ErrorCode.STOP_ALREADY_CUT
    stop_code = StopCode.ALREADY_CUT


class StopPlanInvalid(PhaseStop):
    code = ErrorCode.STOP_PLAN_INVALID
    stop_code = StopCode.PLAN_INVALID


class StopGrantMissing(PhaseStop):
    code = ErrorCode.STOP_GRANT_MISSING
    stop_code = StopCode.GRANT_MISSING


class StopVerifyFailed(PhaseStop):
    code = ErrorCode.STOP_VERIFY_FAILED
    stop_code = StopCode.VERIFY_FAILED


class StopContractViolated(PhaseStop):
    code = ErrorCode.STOP_CONTRACT_VIOLATED
    stop_code = StopCode.CONTRACT_VIOLATED


class StopDocumentTooLarge(PhaseStop):
    code = ErrorCode.STOP_DOCUMENT_TOO_LARGE
    stop_code = StopCode.DOCUMENT_TOO_LARGE


class StopGateNotPassed(PhaseStop):
    """A phase about to write re-checked its gate against the policy and the KB (not
    the run's stored copy of the rule) and found it not passed."""

    code = ErrorCode.STOP_GATE_NOT_PASSED
    stop_code = StopCode.GATE_NOT_PASSED


class StopHookVetoed(PhaseStop):
    """A ``before_*`` hook exited non-zero: the step it guards is not taken
    (``cutter.walk.hooks``); the message names the hook and the first line it printed."""

    code = ErrorCode.STOP_HOOK_VETOED
    stop_code = StopCode.HOOK_VETOED


class StopHookTimeout(PhaseStop):
    """A ``before_*`` hook ran past its timeout: its process group was killed and the
    step it guards is not taken."""

    code = ErrorCode.STOP_HOOK_TIMEOUT
    stop_code = StopCode.HOOK_TIMEOUT


class StopHookFailed(PhaseStop):
    """A ``before_*`` hook could not be run at all (no such file, no permission, a
    hooks directory others may write to): the step it guards is not taken."""

    code = ErrorCode.STOP_HOOK_FAILED
    stop_code = StopCode.HOOK_FAILED


class HooksDirUnsafe(InputError):
    """A hooks directory (or a hook in it) that another user could write to, or that is
    not owned by this process's user (or root): nothing in it is run."""

    code = ErrorCode.HOOKS_DIR_UNSAFE

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"hooks directory {path} is not safe to run from: {reason}")


class NotRevertible(InputError):
    """``revert`` of a run that changed nothing a revert could undo: not LIVE, not
    closed out (still open, failed, rejected, aborted), or closed before runs
    recorded the rows they left. Nothing is started."""

    code = ErrorCode.NOT_REVERTIBLE


class RevertRefused(InputError):
    """``revert`` of a run whose document changed since (a new version, a later cut or
    restore): the message names what changed and the ``cutter restore`` that goes
    back anyway. Nothing is started."""

    code = ErrorCode.REVERT_REFUSED


class BackupUnknown(InputError):
    """``restore`` from a backup that is not stored, is another document's, or does
    not hash to its id. Nothing is started."""

    code = ErrorCode.BACKUP_UNKNOWN
