"""Ports: what the walk needs from the world. Each has an embedded implementation
(``cutter.stores``) and, for production, a PostgreSQL one.

The *target* ports (sources, IUs, ledger) hold the production data a cut
changes; a dry run wraps them in a sandbox that is thrown away. The KB and the
run store are the orchestrator's own records and are written in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cutter.core.hook_names import HookEvent
from cutter.core.kbdocs import KBDoc
from cutter.core.ledger import LedgerEntry, LedgerEnvelope, StoredEntry
from cutter.core.notices import Notice
from cutter.core.outbox import Delivery, DueDelivery, NoticeRecord
from cutter.core.records import Backup, BackupInfo, Candidate, IURow, SourceVersion, WriterGrants
from cutter.core.route import Gate
from cutter.core.sidecar import ApprovalUse, Sidecar

if TYPE_CHECKING:
    from cutter.core.quarantine import UnreadableRun
    from cutter.core.run_pages import RunFilter


class Discoverer(Protocol):
    def discover(self, data: bytes) -> Sequence[Candidate]:
        """Candidates in source order; pure and deterministic for the same bytes."""
        ...


class SourceRepository(Protocol):
    async def current(self, doc_id: str) -> SourceVersion:
        """The document's current version; raises ``UnknownDocument``."""
        ...

    async def content(self, sv_id: str) -> bytes:
        """The version's bytes, checked against its recorded sha256 (``CorruptRecord``)."""
        ...

    async def stored_sha(self, sv_id: str) -> str | None:
        """sha256 of the bytes stored for the version as they are now, not the hash
        recorded beside them; None when the bytes are gone. What drift compares with
        the pinned ``source_sha``."""
        ...

    async def stored_bytes(self, sv_id: str) -> bytes | None:
        """The bytes stored for the version as they are now, unchecked; None when gone.
        Read only to name the units a drift stop is about."""
        ...

    async def mark_cut(self, sv_id: str, change_set_id: str) -> None:
        """Record that a version was cut by a change set (idempotent)."""
        ...

    async def cut_by(self, sv_id: str) -> str | None: ...

    async def set_cut(self, sv_id: str, change_set_id: str | None) -> None:
        """Set which change set a version counts as cut by, whatever it was; None
        clears it. What a restore does to the version whose rows it puts back."""
        ...


@runtime_checkable
class SourcePublisher(Protocol):
    """The ingest step (not the writer's): every sources store implements it, and the
    CLI's ``add-document``, the demo and the benchmarks publish through it."""

    async def publish(
        self, doc_id: str, data: bytes, *, sv_id: str | None = None, sd_id: str | None = None
    ) -> SourceVersion:
        """Store ``data`` as ``doc_id``'s current version (``cutter.stores.ingest``:
        the checks and the derived ids). Publishing the same bytes twice is one
        version; an ``sv_id`` that names another version already is refused
        (``InvalidIdentifier``), nothing stored."""
        ...


class IUStore(Protocol):
    async def rows(self, doc_id: str) -> list[IURow]:
        """Every IU row of a document, ordered by (sv_id, ordinal)."""
        ...

    async def change_set(self, change_set_id: str) -> list[IURow]:
        """The rows a change set wrote, ordered by ordinal."""
        ...

    async def write_staged(self, rows: Sequence[IURow]) -> int:
        """Insert staged rows; rows already present unchanged are skipped. Returns rows added."""
        ...

    async def enact(self, change_set_id: str) -> int:
        """Staged rows of the change set become active, the document's other active rows
        superseded. Idempotent; returns how many rows of the change set are active."""
        ...

    async def save_backup(self, backup: Backup) -> str: ...

    async def load_backup(self, backup_id: str) -> Backup: ...

    async def restore(self, backup: Backup) -> None:
        """Put the document's rows back exactly as the backup holds them."""
        ...

    async def backups(self, doc_id: str) -> list[BackupInfo]:
        """The document's stored backups, oldest first (then by id)."""
        ...


class Ledger(Protocol):
    async def append(self, envelope: LedgerEnvelope) -> LedgerEntry:
        """Append once: an envelope equal to a stored one returns that entry."""
        ...

    async def entries(self) -> list[LedgerEntry]: ...

    async def at(self, seq: int) -> LedgerEntry | None:
        """The entry at ``seq``, if there is one: what an anchor is checked against
        without reading the whole ledger."""
        ...

    async def head(self) -> LedgerEntry | None:
        """The last entry, if any."""
        ...

    async def find(self, envelope: LedgerEnvelope) -> LedgerEntry | None:
        """The stored entry whose envelope equals ``envelope``, if any."""
        ...


@runtime_checkable
class LedgerReader(Protocol):
    """A ledger as it is stored: what ``cutter verify-ledger`` checks."""

    async def stored(self) -> list[StoredEntry]:
        """Every entry in storage order, the envelope as its stored bytes."""
        ...


class GrantProbe(Protocol):
    async def writer_grants(self) -> WriterGrants:
        """What the writer identity may do, read without writing anything."""
        ...


class KnowledgeBase(Protocol):
    async def put(self, kb_id: str, doc: KBDoc) -> None:
        """Write a document atomically (a replay with the same content is a no-op)."""
        ...

    async def get(self, kb_id: str) -> KBDoc:
        """Raises ``KeyError`` when absent and ``CorruptRecord`` when undecodable."""
        ...

    async def list(self, prefix: str) -> list[str]: ...


class Outbox(Protocol):
    """The run store's notification outbox (``cutter.core.outbox``, docs/notifications.md).
    ``create``, ``save`` and ``save_consuming`` insert ``notices_for`` of the sidecar
    in the same transaction as the sidecar, each notice_id once: a refused save
    enqueues nothing, a crash after the save loses nothing."""

    async def enqueue(self, notice: Notice) -> bool:
        """Insert a notice not made by a save (a reminder); False when its id is there."""
        ...

    async def undispatched(self, limit: int) -> Sequence[Notice]:
        """Notices not yet fanned out into deliveries, oldest first."""
        ...

    async def dispatch(self, notice_id: str, endpoints: Sequence[str], at: datetime) -> None:
        """One pending delivery (due ``at``) of the notice per endpoint, and the notice
        marked dispatched, in one transaction; again: nothing more."""
        ...

    async def due(self, now: datetime, limit: int) -> Sequence[DueDelivery]:
        """Pending deliveries whose ``next_at`` is not after ``now``, earliest first."""
        ...

    async def next_due(self) -> datetime | None:
        """The earliest ``next_at`` of a pending delivery, if any."""
        ...

    async def record_attempt(self, delivery: Delivery) -> None:
        """Store where ``delivery`` stands after an attempt (state, attempts, next_at,
        last_error), keyed by its notice_id and endpoint."""
        ...

    async def notifications(self, run_id: str | None, limit: int) -> Sequence[NoticeRecord]:
        """The newest ``limit`` notices (of ``run_id``, if given), oldest first, each
        with its deliveries."""
        ...


class RunStore(Outbox, Protocol):
    async def load(self, run_id: str) -> Sidecar:
        """Raises ``UnknownRun`` or ``CorruptRecord`` (naming the file or row)."""
        ...

    async def create(self, sidecar: Sidecar) -> None:
        """Record a new run, and with it the run's claim on its document: one open run
        per document, across processes. The claim holds until the run's sidecar is
        saved in a terminal state (``cutter.core.states.TERMINAL``). The run is stored at
        ``sidecar.revision`` (0 for a new run).

        Raises ``DocumentBusy`` naming the open run that holds the document, and then
        records nothing."""
        ...

    async def save(self, sidecar: Sidecar) -> None:
        """Save a run's sidecar, compare-and-save (``cutter.core.run_revision``): only when
        the stored run's revision is ``sidecar.revision - 1``, as one atomic step.
        Saving it in a terminal state frees its document.

        Raises ``RunChanged`` when the stored revision is any other (another walker
        saved first), ``UnknownRun`` when no such run was created (saving never
        creates a run), and then saves nothing."""
        ...

    async def save_consuming(self, sidecar: Sidecar, use: ApprovalUse) -> None:
        """Consume ``use.approval_kb_id`` and save ``sidecar`` as one step, the save
        compare-and-save as ``save``.

        Raises ``ApprovalConsumedAlready`` when the approval was consumed before, by
        any process (whatever the revision), then ``RunChanged`` or ``UnknownRun`` as
        ``save`` does; on any of them it consumes nothing and saves nothing."""
        ...

    async def consumed_by(self, approval_kb_id: str) -> str | None:
        """The run that consumed an approval, if any."""
        ...

    async def consumed_for(self, run_id: str) -> list[str]:
        """The approvals ``run_id`` consumed, sorted: start-up recovery compares them
        with the uses its sidecar records, to finish a consumption a crash cut short."""
        ...

    async def run_ids(self) -> list[str]: ...

    async def page(self, after: str, limit: int, where: RunFilter) -> list[Sidecar | UnreadableRun]:
        """At most ``limit`` runs that ``where`` matches, whose ids sort bytewise after
        ``after`` (``""``: from the first), in that order (``cutter.core.run_pages``); a
        run whose record cannot be read is an ``UnreadableRun`` in its place."""
        ...


class Consumption(Protocol):
    """Which run consumed an approval: the one thing of the run store a phase that
    writes may read (``cutter.walk.gate_check``)."""

    async def consumed_by(self, approval_kb_id: str) -> str | None: ...


class GateVerifier(Protocol):
    async def verify(self, sidecar: Sidecar, gate: Gate) -> None:
        """Raise ``StopGateNotPassed`` unless ``gate`` of this run is passed as the
        policy requires, judged from the KB and the consumption records."""
        ...


class KillSwitch(Protocol):
    async def engaged(self) -> bool:
        """True when live runs must stop; fails closed (unreadable counts as engaged)."""
        ...


class KillSwitchControl(KillSwitch, Protocol):
    async def engage(self, reason: str) -> None: ...

    async def release(self) -> None: ...


class DocumentLocks(Protocol):
    def hold(self, doc_id: str, run_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the document for one walk segment; ``DocumentBusy`` names the holder."""
        ...


class Hooks(Protocol):
    """The hooks of a run's events (docs/operations.md, Hooks; ``cutter.walk.hooks``).
    ``payload`` names the run (``run_id``, ``doc_id``, ``mode``) and the event's facts
    (``cutter.core.hook_events``)."""

    async def before(self, event: HookEvent, payload: Mapping[str, object]) -> None:
        """Run ``event``'s hooks in order, the directory's first; raise the ``PhaseStop``
        of the first that does not pass (vetoed, timed out, not runnable). The walk
        runs no other hooks: a notification's run after its notice is saved
        (``cutter.daemon.notify``)."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """The production data a cut changes."""

    sources: SourceRepository
    ius: IUStore
    ledger: Ledger
