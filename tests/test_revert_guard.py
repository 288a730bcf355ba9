"""The revert guard, pure (``cutter.core.revert``): which runs may be reverted, and
which later run the ledger names when the rows changed since."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from cutter.core.errors import NotRevertible, RevertRefused
from cutter.core.ledger import (
    CutEnvelope,
    LedgerEntry,
    LedgerEnvelope,
    RevertEnvelope,
    RollbackEnvelope,
    next_entry,
)
from cutter.core.mode import Mode
from cutter.core.revert import later_run, revert_order
from cutter.core.route import Pin
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
DOC = "doc-1"


def _cut(run_id: str, doc_id: str = DOC) -> CutEnvelope:
    return CutEnvelope(
        run_id=run_id,
        doc_id=doc_id,
        sv_id="sv-1",
        change_set_id=f"cs-{run_id}",
        manifest_digest="d" * 64,
        iu_count=3,
    )


def _chain(*envelopes: LedgerEnvelope) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for envelope in envelopes:
        entries.append(next_entry(entries[-1] if entries else None, envelope))
    return entries


def _run(entries: list[LedgerEntry], **changes: object) -> Sidecar:
    run = Sidecar(
        run_id="run-a",
        doc_id=DOC,
        mode=Mode.LIVE,
        started_by="ann",
        created_at=AT,
        updated_at=AT,
        state=RunState.CLOSEOUT_REPORTED,
        pins={
            Pin.SOURCE_VERSION_ID: "sv-1",
            Pin.BACKUP_ID: "bk-" + "1" * 32,
            Pin.ROWS_AFTER: "bk-" + "2" * 32,
            Pin.MANIFEST_ENVELOPE_ID: entries[0].entry_hash,
        },
    )
    return msgspec.structs.replace(run, **changes)


def test_the_undo_of_a_run_whose_rows_stand_is_its_backup() -> None:

    run = _run(_chain(_cut("run-a")))
    order = revert_order(run, current_sv="sv-1", rows_now="bk-" + "2" * 32, later=None)
    assert (order.backup_id, order.reverts, order.from_rows) == (
        "bk-" + "1" * 32,
        "run-a",
        "bk-" + "2" * 32,
    )


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"mode": Mode.DRY_RUN}, "dry run"),
        ({"state": RunState.FAILED}, "is FAILED"),
        ({"state": RunState.AWAITING_CUT_AUTHORIZATION}, "is AWAITING_CUT_AUTHORIZATION"),
        ({"pins": {Pin.BACKUP_ID: "bk-" + "1" * 32}}, "cutter restore doc-1 --backup bk-111"),
    ],
)
def test_only_a_closed_out_live_run_with_its_rows_recorded(
    changes: dict[str, object], said: str
) -> None:

    run = _run(_chain(_cut("run-a")), **changes)
    with pytest.raises(NotRevertible, match=said):
        revert_order(run, current_sv="sv-1", rows_now="bk-" + "2" * 32, later=None)


def test_a_later_run_is_named_and_a_rolled_back_one_is_not() -> None:

    entries = _chain(
        _cut("run-a"),
        _cut("run-other-doc", doc_id="doc-2"),
        _cut("run-b"),
        RollbackEnvelope(
            run_id="run-b",
            doc_id=DOC,
            sv_id="sv-1",
            change_set_id="cs-run-b",
            backup_id="bk-" + "3" * 32,
            reason="rejected at SG_2",
        ),
        RevertEnvelope(
            run_id="run-c",
            doc_id=DOC,
            sv_id="sv-1",
            change_set_id="cs-run-c",
            reverts=None,
            backup_id="bk-" + "4" * 32,
            pre_restore_backup_id="bk-" + "2" * 32,
            iu_count=0,
        ),
        _cut("run-d", doc_id="doc-2"),
    )
    run = _run(entries)
    assert later_run(entries, run) == "run-c"
    assert later_run(entries[:4], run) is None  # run-b rolled back: the rows are run-a's
    with pytest.raises(RevertRefused, match=r"\(run run-c changed them\); revert run-c first"):
        revert_order(run, current_sv="sv-1", rows_now="bk-" + "9" * 32, later="run-c")
    with pytest.raises(RevertRefused, match="changed outside any run"):
        revert_order(run, current_sv="sv-1", rows_now="bk-" + "9" * 32, later=None)
    with pytest.raises(RevertRefused, match="is gone"):
        revert_order(run, current_sv=None, rows_now="bk-" + "2" * 32, later=None)
