"""``revert``, ``restore`` and ``backups`` through the real daemon (docs/revert.md):
the frames, the CLI with ``--socket``, the policy's starters, the revert's gates
refusing its starter, refusals that store nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.cli.remote import login_name
from cutter.core.mode import Mode
from cutter.core.protocol import (
    BackupList,
    Error,
    ListBackups,
    PolicyInfo,
    Restore,
    Revert,
    RunInfo,
    RunSummary,
    SetPolicy,
    Start,
    StatusOf,
)
from cutter.core.states import RunState
from tests._harness import OPERATOR, stored_rows
from tests.daemon._drive import (
    DOC_ID,
    WatchedDaemon,
    add_document,
    approval_for,
    approve,
    ask,
    expect,
    launch,
    start_run,
)

pytestmark = pytest.mark.subprocess


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[WatchedDaemon]:
    state = tmp_path / "state"
    add_document(state_dir=state)
    running = launch(state, "--enable-execution")
    yield running
    running.stop()


async def _through(socket: Path, run: RunSummary) -> RunSummary:
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION, run
    run = (await approve(socket, run)).run
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, run
    return (await approve(socket, run)).run


def _held(daemon: WatchedDaemon) -> dict[str, object]:
    """Every stored row but the outbox's, which the daemon's deliverer works meanwhile."""
    rows = stored_rows(daemon.state_dir / "cutter.sqlite3")
    return {t: r for t, r in rows.items() if t not in ("outbox", "deliveries")}


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_revert_through_the_daemon(daemon: WatchedDaemon) -> None:
    socket = daemon.socket

    async def scenario() -> str:
        cut = await _through(socket, await start_run(socket, Mode.LIVE))
        assert cut.state is RunState.CLOSEOUT_REPORTED

        listed = expect(await ask(socket, ListBackups(doc_id=DOC_ID)), BackupList)
        assert [b.saved_by for b in listed.backups] == [(cut.run_id,)]
        backup_id = listed.backups[0].backup.backup_id

        for bad in ("bk-" + "f" * 32, "nope"):
            reply = await ask(
                socket,
                Restore(doc_id=DOC_ID, backup_id=bad, started_by=OPERATOR, mode=Mode.LIVE),
            )
            assert isinstance(reply, Error), reply
            assert reply.code in ("E_BACKUP_UNKNOWN", "E_INVALID_ID"), reply

        reply = await ask(socket, Revert(run_id=cut.run_id, started_by=OPERATOR, mode=Mode.LIVE))
        revert = expect(reply, RunInfo).run
        assert revert.state is RunState.AWAITING_CUT_AUTHORIZATION
        refused = await ask(socket, approval_for(revert, approver=OPERATOR))
        assert isinstance(refused, Error), refused
        assert refused.code == "APPROVAL_SELF"
        done = await _through(socket, revert)
        assert done.state is RunState.CLOSEOUT_REPORTED

        # Reverted already: the cut's rows are gone, so its revert is refused.
        again = await ask(socket, Revert(run_id=cut.run_id, started_by=OPERATOR, mode=Mode.LIVE))
        assert isinstance(again, Error), again
        assert again.code == "E_REVERT_REFUSED"
        assert done.run_id in again.message
        assert backup_id in again.message
        return cut.run_id

    cut_id = anyio.run(scenario)
    before = _held(daemon)
    code, out, err = _cli("backups", DOC_ID, "--socket", str(daemon.socket), "--json")
    assert code == 0, err
    assert len(json.loads(out)["backups"]) == 2  # the cut's and the revert's
    code, _, err = _cli("revert", cut_id, "--live", "--socket", str(daemon.socket))
    assert code == 1
    assert err.startswith("E_REVERT_REFUSED: "), err  # the client's one line
    # Embedded on the daemon's own directory: the daemon owns it (exit 3), use --socket.
    code, _, err = _cli("revert", cut_id, "--live", "--state-dir", str(daemon.state_dir))
    assert code == 3
    assert "E_STATE_DIR_BUSY" in err
    assert _held(daemon) == before


def test_the_policy_starters_apply_to_a_revert(daemon: WatchedDaemon) -> None:
    socket = daemon.socket
    me = login_name()

    async def scenario() -> None:
        cut = await _through(socket, await start_run(socket, Mode.LIVE))
        text = f'admins = ["{me}"]\nstarters = ["dan"]\n[sg_1]\napprovers = ["*"]\n'
        expect(await ask(socket, SetPolicy(text=text)), PolicyInfo)
        reply = await ask(socket, Revert(run_id=cut.run_id, started_by=me, mode=Mode.LIVE))
        assert isinstance(reply, Error), reply
        assert reply.code == "E_NOT_PERMITTED"

    anyio.run(scenario)
    code, _, err = _cli("revert", "run-x", "--socket", str(socket))
    assert code == 1
    assert "E_UNKNOWN_RUN" in err


def test_a_restore_without_waiting_is_recorded_before_it_is_accepted(
    daemon: WatchedDaemon,
) -> None:
    socket = daemon.socket

    async def cut() -> str:
        done = await _through(socket, await start_run(socket, Mode.LIVE))
        listed = expect(await ask(socket, ListBackups(doc_id=DOC_ID)), BackupList)
        assert done.state is RunState.CLOSEOUT_REPORTED
        return listed.backups[0].backup.backup_id

    backup_id = anyio.run(cut)
    code, out, err = _cli(
        "restore", DOC_ID, "--backup", backup_id, "--live", "--no-wait", "--json",
        "--socket", str(socket),
    )  # fmt: skip
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    daemon.wait_stopped(run_id)

    async def look() -> tuple[RunSummary, object]:
        run = expect(await ask(socket, StatusOf(run_id=run_id)), RunInfo).run
        busy = await ask(socket, Start(doc_id=DOC_ID, started_by=OPERATOR, mode=Mode.LIVE))
        return run, busy

    run, busy = anyio.run(look)
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert run.restore is not None
    assert run.restore.backup_id == backup_id
    assert run.restore.reverts is None
    # The restore holds its document as any run does.
    assert isinstance(busy, Error)
    assert busy.code == "STOP_DOCUMENT_BUSY"


def test_the_review_of_a_live_revert_at_sg2_says_what_enact_puts_back(
    daemon: WatchedDaemon,
) -> None:
    """`cutter review` of a LIVE revert at SG_2 told the reviewer "dry run: not written,
    as leg A would stage": a restore stages nothing in either mode, its enact puts the
    backup's rows back."""
    socket = daemon.socket

    async def scenario() -> tuple[str, int]:
        cut = await _through(socket, await start_run(socket, Mode.LIVE))
        reply = await ask(socket, Revert(run_id=cut.run_id, started_by=OPERATOR, mode=Mode.LIVE))
        revert = (await approve(socket, expect(reply, RunInfo).run)).run
        assert revert.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, revert
        rows = stored_rows(daemon.state_dir / "cutter.sqlite3")["ius"]
        return revert.run_id, len(rows)

    revert_id, active = anyio.run(scenario)
    code, out, err = _cli("review", revert_id, "--socket", str(socket))
    assert code == 0, err
    assert "dry run" not in out, out
    assert (
        f"lifecycle_enact puts back 0 active rows from the backup (a restore stages none) "
        f"and retires {active} active rows"
    ) in out, out
