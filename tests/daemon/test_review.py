"""``cutter review``: what an open gate authorises, read from a real daemon.

A corpus document is cut live, two of its articles are edited, and the re-cut's
review at SG_1 shows exactly those two as changed; at SG_2 it shows the verify
results and the change set that enact makes active and retires."""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from click.testing import CliRunner, Result

from cutter.cli.main import main
from cutter.core.mode import Mode
from cutter.core.protocol import Error, Review, ReviewOf, decode_reply
from cutter.core.route import Gate
from cutter.core.states import RunState
from cutter.discovery import discover
from tests.daemon._drive import (
    ROOT,
    WatchedDaemon,
    add_document,
    approve,
    ask,
    expect,
    launch,
    start_run,
)
from tests.daemon.conftest import DaemonProcess
from tests.inputs import input_file

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

CORPUS_DOC = ROOT / "tests" / "corpus" / "gdpr-2016-679.txt"
DOC = "gdpr"
EDITED = ("Article 10", "Article 40")
AMENDMENT = b"This sentence was added by an amendment.\n"


def edit(data: bytes, labels: tuple[str, ...]) -> bytes:
    """``data`` with a sentence added at the end of each unit labelled in ``labels``."""
    ends = sorted(
        (c.end for c in discover(data).candidates if c.label in labels and c.kind == "unit"),
        reverse=True,
    )
    assert len(ends) == len(labels)
    for end in ends:
        data = data[:end] + AMENDMENT + data[end:]
    return data


async def _launch(state: Path, daemons: list[DaemonProcess]) -> WatchedDaemon:
    daemon = await anyio.to_thread.run_sync(functools.partial(launch, state, "--enable-execution"))
    daemons.append(daemon)
    return daemon


async def review_cli(socket: Path, run_id: str, *args: str) -> Result:
    invoke = functools.partial(
        CliRunner().invoke, main, ["review", run_id, "--socket", str(socket), *args]
    )
    result = await anyio.to_thread.run_sync(invoke)
    assert result.exit_code == 0, result.output
    return result


async def test_a_re_cut_after_editing_two_articles_shows_exactly_those_two_changed(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    original = input_file(CORPUS_DOC).read_bytes()
    state = tmp_path / "state"
    add_document(DOC, CORPUS_DOC, state_dir=state)
    daemon = await _launch(state, daemons)
    first = await start_run(daemon.socket, Mode.LIVE, doc_id=DOC)
    units = len(discover(original).candidates)
    at_first = expect(await ask(daemon.socket, ReviewOf(run_id=first.run_id)), Review).review
    assert len(at_first.diff.added) == units  # nothing active yet: every unit is new
    assert at_first.diff.unchanged == 0
    shown = (await review_cli(daemon.socket, first.run_id)).stdout
    assert f"{units} added, 0 removed" in shown
    assert "(a first cut: every unit above is added)" in shown
    assert "  added    " not in shown  # the units table already lists each one
    run = (await approve(daemon.socket, first, gate=Gate.SG_1)).run
    run = (await approve(daemon.socket, run, gate=Gate.SG_2)).run
    assert run.state is RunState.CLOSEOUT_REPORTED
    assert await anyio.to_thread.run_sync(daemon.stop) == 0

    edited = tmp_path / "gdpr-edited.txt"
    edited.write_bytes(edit(original, EDITED))
    add_document(DOC, edited, state_dir=state)
    daemon = await _launch(state, daemons)
    second = await start_run(daemon.socket, Mode.LIVE, doc_id=DOC)
    assert second.waiting is not None

    as_json = await review_cli(daemon.socket, second.run_id, "--json")
    reply = expect(decode_reply(as_json.stdout.encode()), Review)
    review = reply.review
    assert review.gate == "SG_1"
    assert review.request_digest == second.waiting.request_digest
    assert [c.label for c in review.diff.changed] == list(EDITED)
    assert (review.diff.added, review.diff.removed, review.diff.moved) == ((), (), ())
    assert review.diff.unchanged == units - 2
    assert review.diff.bytes_after - review.diff.bytes_before == 2 * len(AMENDMENT)
    for change in review.diff.changed:
        assert change.after_size is not None
        assert change.before_size is not None
        assert change.after_size - change.before_size == len(AMENDMENT)
    assert len(review.units) == units
    article_10 = next(u for u in review.units if u.label == "Article 10")
    assert article_10.first_line == "Article 10"
    assert article_10.number == "10"
    assert article_10.size == article_10.end - article_10.start
    assert review.warnings == discover(edited.read_bytes()).warnings
    assert review.change_set is None

    shown = (await review_cli(daemon.socket, second.run_id)).stdout
    assert "2 changed, 0 moved" in shown
    assert f"{units - 2} unchanged" in shown
    for label in EDITED:
        assert f"changed  {label} (" in shown
    assert f"--gate SG_1 --request-digest {second.waiting.request_digest[:16]}" in shown

    run = (await approve(daemon.socket, second, gate=Gate.SG_1)).run
    at_sg2 = expect(await ask(daemon.socket, ReviewOf(run_id=run.run_id)), Review).review
    assert at_sg2.gate == "SG_2"
    assert [v.phase for v in at_sg2.verify] == ["structural_verify", "write_verify"]
    assert at_sg2.verify_result_id is not None
    assert at_sg2.change_set is not None
    assert at_sg2.change_set.staged
    assert len(at_sg2.change_set.activate) == units
    assert len(at_sg2.change_set.retire) == units  # the first cut's rows, superseded
    assert [c.label for c in at_sg2.diff.changed] == list(EDITED)
    shown = (await review_cli(daemon.socket, run.run_id)).stdout
    assert f"lifecycle_enact makes {units} rows" in shown
    assert f"retires {units} active rows" in shown

    run = (await approve(daemon.socket, run, gate=Gate.SG_2)).run
    assert run.state is RunState.CLOSEOUT_REPORTED
    done = expect(await ask(daemon.socket, ReviewOf(run_id=run.run_id)), Error)
    assert done.code == "E_RUN_NOT_AT_GATE"
    assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_a_dry_run_shows_the_discovery_warnings_and_the_change_set_it_would_stage(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    source = input_file(ROOT / "tests" / "corpus" / "fr-constitution-1958.txt")
    found = discover(source.read_bytes())
    assert found.warnings  # a duplicate article number: the reviewer must see it
    state = tmp_path / "state"
    add_document("fr", source, state_dir=state)
    daemon = await _launch(state, daemons)
    run = await start_run(daemon.socket, Mode.DRY_RUN, doc_id="fr")
    review = expect(await ask(daemon.socket, ReviewOf(run_id=run.run_id)), Review).review
    assert review.warnings == found.warnings
    assert [u.label for u in review.units] == [c.label for c in found.candidates]
    assert [u.path for u in review.units] == [c.path for c in found.candidates]
    assert len(review.diff.added) == len(found.candidates)
    shown = (await review_cli(daemon.socket, run.run_id)).stdout
    assert f"{len(found.warnings)} discovery warnings:" in shown
    assert "duplicate unit number: 11" in shown

    run = (await approve(daemon.socket, run, gate=Gate.SG_1)).run
    at_sg2 = expect(await ask(daemon.socket, ReviewOf(run_id=run.run_id)), Review).review
    assert at_sg2.change_set is not None
    assert not at_sg2.change_set.staged  # a dry run wrote nothing
    assert [r.label for r in at_sg2.change_set.activate] == [c.label for c in found.candidates]
    assert at_sg2.change_set.retire == ()
    shown = (await review_cli(daemon.socket, run.run_id)).stdout
    assert "dry run: not written" in shown
    assert await anyio.to_thread.run_sync(daemon.stop) == 0


async def test_an_edit_published_during_sg2_stops_the_run_naming_the_unit(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A new version of the document while the run waits at SG_2: the approval finds
    drift, and the stop names the article that changed, not only the version pin."""
    original = input_file(CORPUS_DOC).read_bytes()
    state = tmp_path / "state"
    add_document(DOC, CORPUS_DOC, state_dir=state)
    daemon = await _launch(state, daemons)
    run = await start_run(daemon.socket, Mode.LIVE, doc_id=DOC)
    run = (await approve(daemon.socket, run, gate=Gate.SG_1)).run
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION

    edited = tmp_path / "gdpr-edited.txt"
    edited.write_bytes(edit(original, ("Article 40",)))
    add_document(DOC, edited, state_dir=state)
    stopped = (await approve(daemon.socket, run, gate=Gate.SG_2)).run
    assert stopped.state is RunState.FAILED
    assert stopped.stop_code == "STOP_DRIFT"
    assert stopped.stop_message is not None
    assert "source_version_id (changed Article 40)" in stopped.stop_message
    assert await anyio.to_thread.run_sync(daemon.stop) == 0
