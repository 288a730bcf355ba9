"""Driving the real daemon from tests: launch it, talk to it, read what it left on disk.

- ``launch`` starts ``python -m cutter daemon`` like ``conftest.start_daemon`` and
  returns a ``WatchedDaemon``, whose ``wait_event`` blocks on the daemon's own JSON
  log lines (a condition variable fed by the reader thread, never a timer).
- ``ask`` sends one command over the Unix socket with ``cutter.daemon.client.Client``;
  ``start_run``/``approve``/``status`` are the typed shorthands the walks use.
- ``StdioDaemon`` is the daemon on ``--stdio``: frames on its stdin, replies on its
  stdout, closing stdin drains it.
- ``final_state`` reads a stopped embedded daemon's database (``tests.daemon._db``)
  and returns a ``FinalState`` with every run-specific id normalised away,
  after checking what must hold whatever the run (ledger chain, sidecars and KB
  docs decode, rows belong to the run's change set, the journal names the run).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cutter.core.anchors import describe
from cutter.core.canonical import sha256_hex
from cutter.core.kbdocs import ApprovalRefusal, Decision, PhaseDoc
from cutter.core.ledger import CutEnvelope
from cutter.core.mode import Mode
from cutter.core.protocol import (
    AnyCommand,
    AnyReply,
    ApprovalStored,
    Error,
    ListRuns,
    Resume,
    RunInfo,
    RunList,
    RunSummary,
    Start,
    StatusOf,
    SubmitApproval,
    decode_reply,
    encode,
)
from cutter.core.records import IURow, IUState, Manifest
from cutter.core.route import PHASES, Gate, Phase, Pin
from cutter.core.states import RunState
from cutter.daemon.client import Client, DaemonUnavailable
from cutter.discovery import TextDiscoverer
from cutter.runtime.failpoints import ENV as FAILPOINT_ENV
from cutter.stores.sqlite.target import SqliteLedger, SqliteSources
from cutter.walk.anchoring import verify_ledger
from cutter.walk.runner import RunnerConfig
from tests.daemon._db import consumed_approvals, stores
from tests.daemon.conftest import ROOT, START_TIMEOUT, DaemonProcess

SAMPLE = ROOT / "cutter" / "samples" / "garden-charter.md"
# How many IUs the default discoverer cuts the sample into (preamble and trailer included).
SAMPLE_UNITS = len(TextDiscoverer().discover(SAMPLE.read_bytes()))
DOC_ID = "garden-charter"
OPERATOR = "operator-ann"
REVIEWER = "reviewer-bob"
WAIT_TIMEOUT = 60.0

R = TypeVar("R")


# -- the daemon process ------------------------------------------------------------------


class LogWaits:
    """Waiting on a daemon's JSON log lines, which a reader thread appends to ``events``."""

    events: list[dict[str, Any]]
    _seen: threading.Condition
    _ended: bool

    def exit_code(self) -> int | None:
        raise NotImplementedError

    def _record(self, raw: bytes) -> dict[str, Any] | None:
        try:
            event = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        with self._seen:
            self.events.append(event)
            self._seen.notify_all()
        return event

    def _log_ended(self) -> None:
        with self._seen:
            self._ended = True
            self._seen.notify_all()

    def wait_event(
        self, matches: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT_TIMEOUT
    ) -> dict[str, Any]:
        """The first logged event ``matches`` accepts, waiting for it if need be."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events if matches(e)), None)

        with self._seen:
            self._seen.wait_for(lambda: found() is not None or self._ended, timeout)
            event = found()
        if event is None:
            raise AssertionError(f"the daemon never logged {what} (exit code {self.exit_code()})")
        return event

    def wait_named(self, name: str) -> dict[str, Any]:
        return self.wait_event(lambda e: e.get("event") == name, name)

    def wait_stopped(self, run_id: str) -> dict[str, Any]:
        """The event that ends the walk segment of ``run_id`` this daemon is driving."""
        settled = {s.value for s in RunState} - {RunState.CREATED.value, RunState.RUNNING.value}

        def ends(e: dict[str, Any]) -> bool:
            if e.get("run_id") == run_id:
                return e.get("event") == "walk_paused" or (
                    e.get("event") == "run_state_changed" and e.get("to_state") in settled
                )
            return e.get("event") in (
                "background_command_refused",
                "background_command_failed",
            ) and str(e.get("what", "")).endswith(run_id)

        return self.wait_event(ends, f"the end of run {run_id}'s walk segment")

    def logged(self, name: str) -> list[dict[str, Any]]:
        with self._seen:
            return [e for e in self.events if e.get("event") == name]

    def recovering(self) -> list[str]:
        return [str(e["run_id"]) for e in self.logged("run_recovering")]


@dataclass
class WatchedDaemon(DaemonProcess, LogWaits):
    """``DaemonProcess`` (JSON log on its stdout) whose log lines can be waited for."""

    _seen: threading.Condition = field(default_factory=threading.Condition)
    _ended: bool = False

    def exit_code(self) -> int | None:
        return self.process.poll()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            event = self._record(raw)
            if event is not None and event.get("event") == "daemon_started":
                self._started.set()
        self._log_ended()
        self._started.set()


def _environment() -> dict[str, str]:
    """The test's environment, without a failpoint: one armed here must not leak in."""
    return {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}


def launch(state_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> WatchedDaemon:
    """``conftest.start_daemon`` with a ``WatchedDaemon``: returns after ``daemon_started``."""
    environment = {**_environment(), "PYTHONPATH": str(ROOT), **(env or {})}
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    stderr_path = state_dir.parent / f"{state_dir.name}-daemon.{secrets.token_hex(4)}.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cutter", "daemon", "--state-dir", str(state_dir), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=ROOT,
        )
    daemon = WatchedDaemon(process, state_dir)
    daemon._reader = threading.Thread(target=daemon._read, daemon=True)
    daemon._reader.start()
    try:
        daemon.wait_started()
    except RuntimeError as exc:
        daemon.kill()
        said = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{exc}; its stderr ends: {' | '.join(said)}") from None
    return daemon


def add_document(
    doc_id: str = DOC_ID,
    path: Path = SAMPLE,
    *,
    state_dir: Path | None = None,
    dsn: str | None = None,
) -> None:
    """``python -m cutter add-document`` into the embedded stores or PostgreSQL."""
    where = ["--dsn", dsn] if dsn is not None else ["--state-dir", str(state_dir)]
    done = subprocess.run(
        [sys.executable, "-m", "cutter", "add-document", *where, doc_id, str(path)],
        capture_output=True,
        env={**_environment(), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


# -- talking to it -----------------------------------------------------------------------


def expect(reply: AnyReply, kind: type[R]) -> R:
    if not isinstance(reply, kind):
        raise AssertionError(f"expected {kind.__name__}, the daemon answered {reply!r}")
    return reply


async def ask(socket: Path, command: AnyCommand) -> AnyReply:
    """One command on a connection of its own; ``DaemonUnavailable`` if the daemon goes."""
    async with Client(socket) as client:
        return await client.request(command)


async def start_run(
    socket: Path, mode: Mode = Mode.LIVE, doc_id: str = DOC_ID, started_by: str = OPERATOR
) -> RunSummary:
    """Start a run and wait for its first stop."""
    command = Start(id="start", doc_id=doc_id, started_by=started_by, mode=mode)
    return expect(await ask(socket, command), RunInfo).run


def approval_for(
    run: RunSummary,
    *,
    approver: str = REVIEWER,
    decision: Decision = Decision.APPROVE,
    resume: bool = True,
    gate: Gate | None = None,
) -> SubmitApproval:
    """A reviewer's answer to exactly the request ``run`` waits on (at ``gate``, when
    the caller names the gate it means: the request shown must be that gate's)."""
    waiting = run.waiting
    assert waiting is not None, f"run {run.run_id} is {run.state}, not at a gate"
    assert gate is None or waiting.gate is gate, f"run {run.run_id} waits at {waiting.gate}"
    return SubmitApproval(
        id=f"approve-{waiting.gate.value}",
        run_id=run.run_id,
        gate=waiting.gate,
        request_digest=waiting.request_digest,
        nonce=waiting.nonce,
        decision=decision,
        approver=approver,
        reason="plan checked against the source",
        review_decision_id=f"review-{run.run_id}" if waiting.gate is Gate.SG_2 else None,
        resume=resume,
    )


async def approve(socket: Path, run: RunSummary, **fields: Any) -> ApprovalStored:
    return expect(await ask(socket, approval_for(run, **fields)), ApprovalStored)


async def status(socket: Path, run_id: str) -> RunSummary:
    return expect(await ask(socket, StatusOf(id="status", run_id=run_id)), RunInfo).run


async def list_runs(socket: Path) -> tuple[RunSummary, ...]:
    return expect(await ask(socket, ListRuns(id="runs")), RunList).runs


async def walk_until_death(socket: Path, mode: Mode = Mode.LIVE) -> int | None:
    """Start a run and approve SG_1 and SG_2 as they come. The step the daemon died in
    (0 start, 1 the SG_1 approval, 2 the SG_2 approval: the client saw the connection
    drop), or None when the run reached its end."""
    try:
        run = await start_run(socket, mode)
    except DaemonUnavailable:
        return 0
    for step in (1, 2):
        try:
            run = (await approve(socket, run)).run
        except DaemonUnavailable:
            return step
    assert run.state is RunState.CLOSEOUT_REPORTED, run
    return None


async def finish(
    socket: Path, run: RunSummary, consumed: Callable[[], Awaitable[list[str]]]
) -> tuple[RunSummary, int]:
    """Approve every gate ``run`` still waits at, to its end. At SG_2, first re-send each
    approval consumed so far (``consumed()`` reads them from the store): each must be
    refused ``APPROVAL_CONSUMED_ALREADY`` and leave the run as it was. Returns the run's
    summary at its end and how many approvals were re-sent."""
    resent = 0
    while run.waiting is not None:
        if run.waiting.gate is Gate.SG_2:
            for kb_id in await consumed():
                command = Resume(id="resend", run_id=run.run_id, approval_kb_id=kb_id)
                reply = await ask(socket, command)
                assert isinstance(reply, Error), reply
                assert reply.code == "APPROVAL_CONSUMED_ALREADY", reply
                resent += 1
            after = await status(socket, run.run_id)
            assert (after.state, after.waiting) == (run.state, run.waiting)
        run = (await approve(socket, run)).run
    return run, resent


class StdioDaemon(LogWaits):
    """``cutter daemon --stdio``: frames written to its stdin, replies read from its stdout,
    one for one. Its ``--log`` is a FIFO that a thread reads, so its log lines can be
    waited for like a socket daemon's."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        self.events = []
        self._seen = threading.Condition()
        self._ended = False
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state_dir.parent / f"{state_dir.name}-log.{secrets.token_hex(4)}.fifo"
        os.mkfifo(self.log_path)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cutter",
                "daemon",
                "--stdio",
                "--log",
                str(self.log_path),
                "--state-dir",
                str(state_dir),
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**_environment(), "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )

    def exit_code(self) -> int | None:
        return self.process.poll()

    def _read(self) -> None:
        with open(self.log_path, "rb") as log:  # returns once the daemon opens its end
            for raw in log:
                self._record(raw)
        self._log_ended()

    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def receive(self) -> AnyReply:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"stdout closed (exit code {self.process.poll()})")
        return decode_reply(line)

    def request(self, command: AnyCommand) -> AnyReply:
        self.send_raw(encode(command))
        return self.receive()

    def close_stdin(self) -> None:
        """End of input: the daemon drains and exits."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def close(self) -> int:
        """Close stdin, wait for the exit; its exit code (killed if it does not exit)."""
        self.close_stdin()
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            if self._reader.is_alive():
                # The daemon never opened its log: open the writer end to free the reader.
                with contextlib.suppress(OSError):
                    os.close(os.open(self.log_path, os.O_WRONLY | os.O_NONBLOCK))
            self._reader.join(timeout=10)


# -- what a run left on disk --------------------------------------------------------------


def check_rows_against_plan(
    rows: Sequence[IURow], manifest: Manifest | None, source: bytes
) -> None:
    """A closed live cut's rows are exactly its manifest's IUs, all active, and their
    bodies tile the source bytes."""
    assert manifest is not None, "the cutplan phase doc holds no manifest"
    assert [(r.iu_id, r.ordinal, r.label, r.kind, r.start, r.end, r.region_sha) for r in rows] == [
        (p.iu_id, p.ordinal, p.label, p.kind, p.start, p.end, p.region_sha) for p in manifest.ius
    ]
    assert {r.state for r in rows} == {IUState.ACTIVE}
    assert [r.ordinal for r in rows] == list(range(len(rows)))
    assert all(sha256_hex(r.body) == r.region_sha for r in rows)
    assert b"".join(r.body for r in rows) == source


# Pins whose values are derived from the run id (the change set id and what hashes it).
# rows_after: the snapshot id of rows that carry the run's change set id.
RUN_SPECIFIC_PINS = frozenset(
    {Pin.CHANGE_SET_ID, Pin.MANIFEST_ENVELOPE_ID, Pin.VERIFY_RESULT_ID, Pin.ROWS_AFTER}
)
_APPROVAL_SERIAL = re.compile(r"^(approvals/<run>/SG_[12])-[0-9a-f]+$")


def normalise(kb_id: str, run_id: str) -> str:
    """A KB id with the run id, and an approval's random serial, taken out."""
    plain = kb_id.replace(run_id, "<run>")
    match = _APPROVAL_SERIAL.fullmatch(plain)
    return match.group(1) if match else plain


@dataclass(frozen=True)
class FinalState:
    """A run's outcome with run-specific ids normalised: equal for equal outcomes."""

    state: RunState
    stop_code: str | None
    phases_passed: tuple[Phase, ...]
    pins: tuple[tuple[str, object], ...]
    gates: tuple[tuple[object, ...], ...]
    ius: tuple[tuple[object, ...], ...]
    ledger: tuple[tuple[object, ...], ...]
    source_cut: bool
    kb_docs: frozenset[tuple[str, str]]
    consumed: tuple[str, ...]


@dataclass(frozen=True)
class OnDisk:
    final: FinalState
    refusal_codes: tuple[str, ...]  # of the approval refusals the run recorded
    consumed_ids: tuple[str, ...]  # the approval kb ids the journal holds
    ledger_head: str


async def final_state(state_dir: Path, run_id: str) -> OnDisk:
    """Read the stopped daemon's state directory; check what must hold for any run."""
    async with stores(state_dir) as config:
        return await _final_state(config, state_dir, run_id)


async def _final_state(config: RunnerConfig, state_dir: Path, run_id: str) -> OnDisk:
    run_store = config.run_store
    kb = config.kb
    ius = config.target.ius
    ledger = config.target.ledger
    sources = config.target.sources
    assert isinstance(ledger, SqliteLedger)
    assert isinstance(sources, SqliteSources)

    # Every sidecar decodes (load raises CorruptRecord otherwise).
    run_ids = await run_store.run_ids()
    assert run_ids == [run_id], run_ids
    sidecars = [await run_store.load(r) for r in run_ids]
    sidecar = sidecars[0]
    pins = sidecar.pins
    change_set_id = pins.get(Pin.CHANGE_SET_ID)

    # Every KB doc decodes; refusals are listed apart (their ids hold an error id).
    kb_docs: set[tuple[str, str]] = set()
    refusals: list[str] = []
    for kb_id in await kb.list(""):
        doc = await kb.get(kb_id)
        if isinstance(doc, ApprovalRefusal):
            assert kb_id.startswith(f"runs/{run_id}/refusals/"), kb_id
            refusals.append(doc.code)
            continue
        kb_docs.add((normalise(kb_id, run_id), type(doc).__name__))

    # The consumed approvals: each names this run.
    consumed_ids: list[str] = []
    for record in consumed_approvals(state_dir):
        assert record.run_id == run_id, record
        assert await run_store.consumed_by(record.approval_kb_id) == run_id
        consumed_ids.append(record.approval_kb_id)
    used = [u.approval_kb_id for g in sidecar.gates for u in g.uses]
    assert sorted(used) == sorted(consumed_ids), (used, consumed_ids)

    # IU rows: all of this run's change set; a live cut's pinned backup loads.
    rows = await ius.rows(DOC_ID)
    assert {r.change_set_id for r in rows} <= {change_set_id}, (change_set_id, rows[:1])
    if sidecar.mode is Mode.LIVE and Pin.BACKUP_ID in pins and change_set_id is not None:
        backup = await ius.load_backup(str(pins[Pin.BACKUP_ID]))
        assert backup.backup_id == pins[Pin.BACKUP_ID]

    # The ledger verifies over its stored bytes; its entries are this run's, and each
    # is where the anchor this run recorded for it says.
    head = await ledger.verify()
    report = await verify_ledger(ledger, kb)
    assert report.ok, describe(report)
    if sidecar.mode is Mode.LIVE:
        assert report.unanchored == (), describe(report)
    entries = await ledger.entries()
    if entries:
        assert head == entries[-1].entry_hash
    for entry in entries:
        assert entry.envelope.run_id == run_id
        assert entry.envelope.change_set_id == change_set_id
    if sidecar.mode is Mode.LIVE and Pin.MANIFEST_ENVELOPE_ID in pins:
        assert pins[Pin.MANIFEST_ENVELOPE_ID] in {e.entry_hash for e in entries}

    if sidecar.state is RunState.CLOSEOUT_REPORTED and sidecar.mode is Mode.LIVE:
        cutplan = await kb.get(sidecar.phase_docs[Phase.CUTPLAN])
        assert isinstance(cutplan, PhaseDoc)
        check_rows_against_plan(rows, cutplan.manifest, SAMPLE.read_bytes())

    sv_id = pins.get(Pin.SOURCE_VERSION_ID)
    cut_by = await sources.cut_by(str(sv_id)) if sv_id is not None else None
    assert cut_by in (None, change_set_id), (cut_by, change_set_id)

    final = FinalState(
        state=sidecar.state,
        stop_code=sidecar.stop_code,
        phases_passed=sidecar.phases_passed,
        pins=tuple(
            sorted(
                (p.value, "<run-specific>" if p in RUN_SPECIFIC_PINS else v)
                for p, v in pins.items()
            )
        ),
        gates=tuple(
            (
                g.gate,
                normalise(g.request_kb_id, run_id),
                g.required_approvals,
                tuple(
                    (normalise(u.approval_kb_id, run_id), u.approver, u.decision) for u in g.uses
                ),
            )
            for g in sidecar.gates
        ),
        ius=tuple(
            (
                r.iu_id,
                r.doc_id,
                r.sv_id,
                r.ordinal,
                r.label,
                r.kind,
                r.start,
                r.end,
                r.region_sha,
                r.body,
                r.state,
            )
            for r in rows
        ),
        ledger=tuple(
            (
                e.seq,
                type(e.envelope).__name__,
                e.envelope.doc_id,
                e.envelope.sv_id,
                e.envelope.manifest_digest if isinstance(e.envelope, CutEnvelope) else None,
                e.envelope.iu_count if isinstance(e.envelope, CutEnvelope) else None,
            )
            for e in entries
        ),
        source_cut=cut_by is not None,
        kb_docs=frozenset(kb_docs),
        consumed=tuple(sorted(normalise(c, run_id) for c in consumed_ids)),
    )
    return OnDisk(
        final=final,
        refusal_codes=tuple(sorted(refusals)),
        consumed_ids=tuple(consumed_ids),
        ledger_head=head,
    )


def expected_kb_docs(*, closed: bool = True, live: bool = False) -> frozenset[tuple[str, str]]:
    """The KB docs of a whole walk: 11 phase docs, 2 requests, 2 approvals, closeout, index,
    and a live run's ledger anchor of its cut."""
    docs = {(f"runs/<run>/phases/{n:02d}-{p.value}", "PhaseDoc") for n, p in enumerate(PHASES, 1)}
    for gate in Gate:
        docs.add((f"runs/<run>/gates/{gate.value}/request", "SovereignRequest"))
        docs.add((f"approvals/<run>/{gate.value}", "Approval"))
    if closed:
        docs |= {("runs/<run>/closeout", "CloseoutReport"), ("runs-index/<run>", "RunsIndexEntry")}
    if live:
        docs.add(("ledger-anchors/<run>/cut", "LedgerAnchor"))
    return frozenset(docs)
