"""The revert guard (pure): may ``cutter revert RUN`` start, and what would it restore?

A revert puts the document's rows back as they were before RUN: RUN's pre-write
backup (its ``backup_id`` pin). That is only the undo of RUN while the document is
still as RUN left it — the same current version, and exactly the rows RUN's
``lifecycle_enact`` left (its ``rows_after`` pin, a snapshot id). Otherwise the
revert is refused, naming what changed and the ``cutter restore`` that goes back to
RUN's backup anyway. A revert of a revert is the same rule: the revert's own
pre-write backup holds the rows the cut left, so reverting it restores the cut.
"""

from __future__ import annotations

from collections.abc import Sequence

from cutter.core.errors import NotRevertible, RevertRefused
from cutter.core.ledger import CutEnvelope, LedgerEntry, RevertEnvelope, RollbackEnvelope
from cutter.core.mode import Mode
from cutter.core.restoring import RestoreOrder
from cutter.core.route import Pin
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState


def anyway(run: Sidecar) -> str:
    """The command that restores RUN's backup whatever changed since."""
    backup = run.pins.get(Pin.BACKUP_ID)
    if backup is None:
        return "cutter backups " + run.doc_id
    return f"cutter restore {run.doc_id} --backup {backup}"


def revert_order(
    run: Sidecar, *, current_sv: str | None, rows_now: str, later: str | None
) -> RestoreOrder:
    """The restore that reverts ``run``, or ``NotRevertible``/``RevertRefused``.

    ``current_sv`` is the document's current version (None: the document is gone),
    ``rows_now`` the snapshot id of its rows now, ``later`` the run the ledger says
    changed them after ``run`` (``later_run``), if any."""
    what = f"run {run.run_id}"
    if run.mode is not Mode.LIVE:
        raise NotRevertible(f"{what} is a dry run: it changed no rows, there is nothing to revert")
    if run.state is not RunState.CLOSEOUT_REPORTED:
        raise NotRevertible(
            f"{what} is {run.state.value}, not CLOSEOUT_REPORTED: only a finished live run "
            "changed rows a revert could undo (a stopped one rolled its writes back)"
        )
    rows_after = run.pins.get(Pin.ROWS_AFTER)
    backup = run.pins.get(Pin.BACKUP_ID)
    if rows_after is None or backup is None:
        raise NotRevertible(
            f"{what} recorded no {Pin.ROWS_AFTER.value} (it closed before reverts existed), "
            f"so whether its document changed since cannot be told; to go back anyway: "
            f"{anyway(run)}"
        )
    sv_id = run.pins.get(Pin.SOURCE_VERSION_ID)
    if current_sv != sv_id:
        now = "is gone" if current_sv is None else f"is now at version {current_sv}"
        since = f" and run {later} changed its rows" if later else ""
        raise RevertRefused(
            f"document {run.doc_id} changed since {what}: it {now}{since}, {what} cut "
            f"{sv_id}; to go back to the rows before {what} anyway: {anyway(run)}"
        )
    if rows_now != rows_after:
        by = f"run {later} changed them" if later else "they were changed outside any run"
        first = f"revert {later} first, or " if later else ""
        raise RevertRefused(
            f"the rows of document {run.doc_id} are not those {what} left ({by}); "
            f"{first}to go back to the rows before {what} anyway: {anyway(run)}"
        )
    return RestoreOrder(backup_id=str(backup), reverts=run.run_id, from_rows=str(rows_after))


def later_run(entries: Sequence[LedgerEntry], run: Sidecar) -> str | None:
    """The last run after ``run`` whose cut or restore of the same document stands in
    the ledger (appended after ``run``'s entry, not rolled back): the run that left
    the rows the document holds now, when one did."""
    mine = run.pins.get(Pin.MANIFEST_ENVELOPE_ID)
    start = next((i + 1 for i, e in enumerate(entries) if e.entry_hash == mine), 0)
    rolled_back = {
        e.envelope.run_id for e in entries[start:] if isinstance(e.envelope, RollbackEnvelope)
    }
    found = None
    for entry in entries[start:]:
        envelope = entry.envelope
        if (
            isinstance(envelope, CutEnvelope | RevertEnvelope)
            and envelope.doc_id == run.doc_id
            and envelope.run_id != run.run_id
            and envelope.run_id not in rolled_back
        ):
            found = envelope.run_id
    return found
