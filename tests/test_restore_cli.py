"""``cutter revert``, ``cutter restore`` and ``cutter backups`` on the embedded stores
(docs/revert.md): each refusal is one ``CODE: message`` line, exit 1, and nothing
stored changes; a revert walks to SG_1; ``backups`` names the run that saved each."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cutter.cli.main import main
from cutter.cli.remote import login_name
from cutter.core.route import Pin
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.stores.owner import claim
from tests._harness import stored_rows
from tests._restore import DOC, SAMPLE, World, edition, in_world


def _cut(state: Path) -> Sidecar:
    async def cut(world: World) -> Sidecar:
        await world.publish(SAMPLE)
        return await world.cut()

    sidecar: Sidecar = in_world(state, cut)
    return sidecar


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_backups_lists_the_cuts_backup_and_the_run_that_saved_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cut = _cut(state)
    code, out, err = _cli("backups", DOC, "--state-dir", str(state))
    assert code == 0, err
    assert str(cut.pins[Pin.BACKUP_ID]) in out
    assert f"saved by {cut.run_id}" in out
    assert "0 rows (0 active)" in out  # the sample's first cut backed up no rows
    code, out, err = _cli("backups", DOC, "--state-dir", str(state), "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [b["backup"]["backup_id"] for b in listed["backups"]] == [cut.pins[Pin.BACKUP_ID]]


def test_revert_walks_to_sg1_and_restore_refuses_a_bad_backup(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cut = _cut(state)
    db = state / "cutter.sqlite3"
    before = stored_rows(db)
    for args, code_text in (
        (("revert", "run-0000000000000000"), "E_UNKNOWN_RUN"),
        (("revert", "../etc"), "E_INVALID_ID"),
        (("restore", DOC, "--backup", "bk-" + "0" * 32), "E_BACKUP_UNKNOWN"),
        (("restore", DOC, "--backup", "'; DROP TABLE ius"), "E_INVALID_ID"),
    ):
        code, _, err = _cli(*args, "--live", "--state-dir", str(state))
        assert code == 1, (args, err)
        assert err.startswith(f"Error: {code_text}: "), err
        assert "Traceback" not in err
    assert stored_rows(db) == before

    code, out, err = _cli("revert", cut.run_id, "--live", "--state-dir", str(state))
    assert code == 0, err
    assert RunState.AWAITING_CUT_AUTHORIZATION.value in out
    assert f"reverts {cut.run_id}: rows of backup {cut.pins[Pin.BACKUP_ID]}" in out

    async def runs(world: World) -> list[Sidecar]:
        return await world.runner.runs()

    revert = next(r for r in in_world(state, runs) if r.restore is not None)
    assert revert.restore is not None
    assert revert.restore.reverts == cut.run_id
    assert revert.started_by == login_name()


def test_a_state_directory_without_a_database_is_refused_and_not_made(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    code, _, err = _cli("revert", "run-x", "--state-dir", str(missing))
    assert code == 1
    assert err.startswith("Error: E_INPUT: no database"), err
    assert not missing.exists()


def test_revert_after_a_new_version_is_refused_with_its_code(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cut = _cut(state)

    async def publish(world: World) -> str:
        return await world.publish(edition(2))

    in_world(state, publish)
    before = stored_rows(state / "cutter.sqlite3")
    code, _, err = _cli("revert", cut.run_id, "--live", "--state-dir", str(state))
    assert code == 1
    assert err.startswith("Error: E_REVERT_REFUSED: "), err
    assert f"cutter restore {DOC} --backup {cut.pins[Pin.BACKUP_ID]}" in err
    assert stored_rows(state / "cutter.sqlite3") == before


def test_a_daemons_state_directory_is_refused_naming_its_socket(tmp_path: Path) -> None:
    """README's `cutter revert RUN --live` beside a running daemon: the refusal (exit 3)
    says how to go through the daemon, and nothing is stored."""
    state = tmp_path / "state"
    cut = _cut(state)
    socket = state / "daemon.sock"
    before = stored_rows(state / "cutter.sqlite3")
    with claim(state, f"cutter daemon on {socket}"):
        socket.touch()  # where a daemon listens; the claim above is what refuses
        for args in (
            ("revert", cut.run_id),
            ("restore", DOC, "--backup", str(cut.pins[Pin.BACKUP_ID])),
        ):
            code, _, err = _cli(*args, "--live", "--state-dir", str(state))
            assert code == 3, (args, err)
            assert err.startswith("Error: E_STATE_DIR_BUSY: "), err
            assert f"add --socket {socket}" in err, err
    assert stored_rows(state / "cutter.sqlite3") == before


def test_a_backup_that_is_not_stored_is_not_called_corrupt(tmp_path: Path) -> None:
    """E_BACKUP_UNKNOWN for a well-formed id nobody stored said "corrupt record
    backups/bk-…", which sends an operator to `cutter doctor` for nothing."""
    state = tmp_path / "state"
    _cut(state)
    missing = "bk-" + "0" * 32
    code, _, err = _cli("restore", DOC, "--backup", missing, "--live", "--state-dir", str(state))
    assert code == 1, err
    assert err.startswith(f"Error: E_BACKUP_UNKNOWN: backup {missing} cannot be restored: "), err
    assert "corrupt" not in err, err
    assert "no such backup" in err, err
