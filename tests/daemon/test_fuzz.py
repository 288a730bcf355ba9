"""Protocol fuzzing against one real daemon holding runs paused at both gates.

Whatever arrives on the socket — random bytes, JSON of the wrong shape, unknown
tags, huge numbers, deep nesting, truncated or oversize frames, NUL and invalid
UTF-8, well-formed commands carrying hostile ids, thousands of connections that
open and close, some mid-frame — every frame gets a typed ``Error`` (or, for a
well-formed command, its ordinary reply) or a cleanly closed connection, the
daemon keeps serving, its memory stays bounded, and no run changes state: the
paused runs' sidecar files are byte-identical afterwards.

The clients here are plain blocking sockets: each case is one connection that
sends its bytes, half-closes, and reads every reply until the daemon closes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cutter.assembly.embedded import embedded_config
from cutter.core.errors import InvalidIdentifier
from cutter.core.ids import check_run_id
from cutter.core.kbdocs import Decision
from cutter.core.mode import Mode
from cutter.core.protocol import (
    MAX_FRAME_BYTES,
    AbortRun,
    Accepted,
    AnyCommand,
    AnyReply,
    ApprovalStored,
    BadFrame,
    Error,
    Event,
    ListRuns,
    Ping,
    Pong,
    Resume,
    RunInfo,
    RunList,
    RunSummary,
    SetKillSwitch,
    Shutdown,
    Start,
    StatusOf,
    SubmitApproval,
    Watch,
    decode_command,
    decode_reply,
    encode,
)
from cutter.core.route import Gate
from cutter.core.states import RunState
from cutter.daemon.client import Client
from cutter.stores.sqlite.target import SqliteSources
from tests.daemon._db import consumed_approvals, contents, query, sidecars_stored
from tests.daemon.conftest import ROOT, DaemonProcess, start_daemon

SAMPLE = ROOT / "cutter" / "samples" / "garden-charter.md"
OPERATOR = "operator-ann"
REVIEWER = "reviewer-bob"
IO_TIMEOUT = 60.0  # a socket timeout, so a hung daemon fails a test instead of the suite
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- a blocking client ------------------------------------------------------------
def exchange(path: Path, payload: bytes, *, half_close: bool = True) -> tuple[list[bytes], bool]:
    """Send ``payload`` on a new connection, half-close, read until the daemon closes.

    Returns the reply lines and whether the daemon reset the connection (it may,
    after refusing an oversize frame whose rest was never read)."""
    reset = False
    chunks: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(IO_TIMEOUT)
        conn.connect(str(path))
        try:
            conn.sendall(payload)
            if half_close:
                conn.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            reset = True
        try:
            while data := conn.recv(1 << 16):
                chunks.append(data)
        except ConnectionResetError:
            reset = True
    raw = b"".join(chunks)
    assert raw == b"" or raw.endswith(b"\n"), f"a reply frame was cut off: {raw[-200:]!r}"
    return raw.split(b"\n")[:-1], reset


def replies(path: Path, payload: bytes) -> list[AnyReply]:
    lines, _ = exchange(path, payload)
    return [decode_reply(line) for line in lines]


def ask(path: Path, command: AnyCommand) -> AnyReply:
    [reply] = replies(path, encode(command))
    return reply


# --- the daemon under fuzz ----------------------------------------------------------
@dataclass
class Fuzzed:
    daemon: DaemonProcess
    state_dir: Path
    runs: dict[str, RunSummary]  # the paused runs, as `runs` listed them before the fuzz
    sidecars: dict[str, bytes]  # and their sidecar files

    @property
    def socket(self) -> Path:
        return self.daemon.socket

    def sidecar_files(self) -> dict[str, bytes]:
        return sidecars_stored(self.state_dir)

    def assert_untouched(self) -> None:
        """The daemon answers, and not one paused run moved."""
        assert self.daemon.process.poll() is None, "the daemon exited"
        assert isinstance(ask(self.socket, Ping(id="alive")), Pong)
        listed = ask(self.socket, ListRuns())
        assert isinstance(listed, RunList)
        now = {r.run_id: r for r in listed.runs}
        for run_id, before in self.runs.items():
            assert now[run_id] == before
        files = self.sidecar_files()
        for run_id, data in self.sidecars.items():
            assert files[run_id] == data, f"sidecar of {run_id} changed"


def _approve(path: Path, run: RunSummary) -> RunSummary:
    assert run.waiting is not None
    reply = ask(
        path,
        SubmitApproval(
            run_id=run.run_id,
            gate=run.waiting.gate,
            request_digest=run.waiting.request_digest,
            nonce=run.waiting.nonce,
            decision=Decision.APPROVE,
            approver=REVIEWER,
            reason="reviewed",
        ),
    )
    assert isinstance(reply, ApprovalStored), reply
    return reply.run


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """One daemon for the module: two runs paused at SG_1, one at SG_2."""
    state_dir = tmp_path_factory.mktemp("fuzz") / "state"
    data = SAMPLE.read_bytes()
    doc_ids = ["doc-fuzz-1", "doc-fuzz-2", "doc-fuzz-3"]

    async def publish() -> None:
        async with embedded_config(state_dir) as config:
            sources = config.target.sources
            assert isinstance(sources, SqliteSources)
            for doc_id in doc_ids:
                await sources.publish(doc_id, data)

    anyio.run(publish)
    daemon = start_daemon(state_dir)
    try:
        paused: list[RunSummary] = []
        for doc_id in doc_ids:
            reply = ask(daemon.socket, Start(doc_id=doc_id, started_by=OPERATOR))
            assert isinstance(reply, RunInfo), reply
            paused.append(reply.run)
        paused[-1] = _approve(daemon.socket, paused[-1])
        assert [r.state for r in paused] == [
            RunState.AWAITING_CUT_AUTHORIZATION,
            RunState.AWAITING_CUT_AUTHORIZATION,
            RunState.AWAITING_LIFECYCLE_AUTHORIZATION,
        ]
        listed = ask(daemon.socket, ListRuns())
        assert isinstance(listed, RunList)
        fuzzed = Fuzzed(daemon, state_dir, {r.run_id: r for r in listed.runs}, {})
        fuzzed.sidecars = fuzzed.sidecar_files()
        assert sorted(fuzzed.sidecars) == sorted(fuzzed.runs)
        yield fuzzed
        fuzzed.assert_untouched()
    finally:
        daemon.kill()


# --- what each frame must get --------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """The reply one line must get: an Error with ``code`` (a bad frame), or
    (``command`` set) the command's own answer, whatever it is, never an internal error."""

    code: str | None = None
    command: AnyCommand | None = None


def expectations(payload: bytes, paused: set[str]) -> tuple[list[Expect], Watch | None]:
    """What the daemon must answer to ``payload``, frame by frame, judged by the
    protocol's own decoder; and the ``watch`` that turns the rest into a stream.

    Only complete lines are frames; a blank line is skipped; an unterminated tail
    is dropped with the connection."""
    expected: list[Expect] = []
    for line in payload.split(b"\n")[:-1]:
        if not line.strip():
            continue
        try:
            command = decode_command(line)
        except BadFrame as exc:
            expected.append(Expect(code=exc.code))
            continue
        # Commands that legitimately change the daemon or a run are not fuzz material.
        assume(not isinstance(command, Shutdown | SetKillSwitch))
        assume(not (isinstance(command, AbortRun) and command.run_id in paused))
        if isinstance(command, Watch):
            return expected, command
        expected.append(Expect(command=command))
    return expected, None


def check_replies(got: list[AnyReply], expected: list[Expect], watch: Watch | None) -> None:
    assert len(got) >= len(expected), (got, expected)
    got, streamed = got[: len(expected)], got[len(expected) :]
    for reply, want in zip(got, expected, strict=True):
        if want.command is None:
            assert isinstance(reply, Error), reply
            assert reply.code == want.code, reply
            assert reply.id is None
        else:
            assert reply.id == want.command.id, reply
            assert not isinstance(reply, Event)
            if isinstance(reply, Error):
                assert reply.code != "E_INTERNAL", (want.command, reply)
    if watch is None:
        assert streamed == []
    elif watch.run_id is not None and not _valid_run_id(watch.run_id):
        [refusal] = streamed  # refused, and the connection closed
        assert isinstance(refusal, Error), refusal
        assert (refusal.code, refusal.id) == ("E_INVALID_ID", watch.id)
    else:
        assert all(isinstance(r, Event) for r in streamed), streamed


def _valid_run_id(run_id: str) -> bool:
    try:
        check_run_id(run_id)
    except InvalidIdentifier:
        return False
    return True


# --- strategies --------------------------------------------------------------------
TAGS = ["ping", "start", "status", "runs", "approve", "resume", "abort", "watch"]
ODD_TAGS = ["", "PING", "Ping", "stop", "cut", "pong", "error", "event", "reply", "shutdown "]
FIELDS = [
    "v",
    "id",
    "cmd",
    "doc_id",
    "started_by",
    "mode",
    "wait",
    "run_id",
    "state",
    "gate",
    "request_digest",
    "nonce",
    "decision",
    "approver",
    "reason",
    "review_decision_id",
    "resume",
    "approval_kb_id",
    "by",
    "reply",
]
HOSTILE_TOKENS = [
    "",
    " ",
    "..",
    "../x",
    "../../etc/passwd",
    "a/b",
    "/abs",
    "\x00",
    "run-\x00",
    "a\nb",
    "a b",
    "a..b",
    ".hidden",
    "-dash",
    "%2e%2e",
    "ü",
    "x" * 129,
    "x" * 10_000,
    "run-0000000000000000/../../kb",
]
HOSTILE_KB_IDS = [
    "",
    "../x",
    "a/../b",
    "/abs",
    "a//b",
    "a.json/b",
    "\x00",
    "a/\x00",
    "a/b/c/d/e/f/g/h/i",
    "x" * 10_000,
    "approvals/../../runs/runs/x",
]

huge_ints = st.integers(min_value=-(2**200), max_value=2**200)
scalars = (
    st.none()
    | st.booleans()
    | huge_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["DRY_RUN", "LIVE", "SG_1", "SG_2", "approve", "reject", "RUNNING"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@st.composite
def json_frames(draw: st.DrawFn) -> bytes:
    """JSON of the wrong shape: wrong types, unknown tags and fields, huge ints."""
    frame: dict[str, object] = {}
    if draw(st.booleans()):
        frame["cmd"] = draw(st.sampled_from(TAGS + ODD_TAGS) | st.text(max_size=8) | json_values)
    names = st.sampled_from(FIELDS) | st.text(max_size=10)
    frame.update(draw(st.dictionaries(names, json_values, max_size=6)))
    top = draw(st.sampled_from(["object", "object", "object", "array", "scalar"]))
    value: object = frame if top == "object" else [frame] if top == "array" else draw(scalars)
    ascii_only = draw(st.booleans())
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def deep(depth: int, command: bytes) -> bytes:
    return b'{"cmd":"ping","id":' + b"[" * depth + command + b"]" * depth + b"}"


valid_commands = st.sampled_from(
    [
        encode(Ping(id="p")),
        encode(StatusOf(id="s", run_id="run-0000000000000000")),
        encode(ListRuns(id="l", state=RunState.RUNNING)),
        encode(Resume(id="r", run_id="run-0000000000000000")),
        encode(Start(id="st", doc_id="../x", started_by=OPERATOR)),
    ]
)


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A valid frame truncated, or with a NUL, an invalid UTF-8 byte or a control
    byte put somewhere into it."""
    frame = draw(valid_commands).rstrip(b"\n")
    at = draw(st.integers(min_value=0, max_value=len(frame)))
    how = draw(st.sampled_from(["truncate", "nul", "ff", "c0", "ctl", "dup"]))
    if how == "truncate":
        return frame[:at]
    if how == "dup":
        return frame[:at] + frame
    insert = {"nul": b"\x00", "ff": b"\xff", "c0": b"\xc0\xaf", "ctl": b"\x1b"}[how]
    return frame[:at] + insert + frame[at:]


frames = st.one_of(
    st.binary(max_size=300),  # random bytes (a newline in them splits the frame)
    valid_commands.map(bytes.rstrip),  # a good frame among the bad: the connection goes on
    json_frames(),
    mangled(),
    st.builds(deep, st.sampled_from([1, 64, 512, 2000, 10_000]), st.just(b"1")),
    st.sampled_from(
        [
            b"\x00" * 64,
            b"\xff\xfe\xfd",
            b'{"cmd":"ping","id":"\\ud800"}',  # a lone surrogate escape
            b'{"cmd":"ping","id":"\xed\xa0\x80"}',  # a surrogate in UTF-8 bytes
            b'\xef\xbb\xbf{"cmd":"ping"}',  # a byte order mark
            b'{"cmd":"ping","v":2}',
            b'{"cmd":"ping","v":1e400}',
            b'{"cmd":"ping","v":' + b"9" * 5000 + b"}",
            b'{"cmd":"ping","id":"p","id":"q"}',
            b'{"cmd":"ping"}{"cmd":"ping"}',
            b'{"cmd":"ping",}',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"cmd":"ping","x":' + b'{"a":' * 20_000 + b"1" + b"}" * 20_000 + b"}",
            b'{"cmd":"ping","id":"' + b"\\u0000" * 1000 + b'"}',
            b"null",
            b"[]",
            b'"ping"',
        ]
    ),
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """One to four frames, each ended by a newline, sometimes an unterminated tail."""
    body = draw(st.lists(frames, min_size=1, max_size=4))
    separator = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n \n"]))
    payload = separator.join(body) + b"\n"
    if draw(st.booleans()):
        payload += draw(frames)  # half a frame, then the client goes
    return payload


@st.composite
def hostile_commands(draw: st.DrawFn, run_ids: list[str]) -> AnyCommand:
    """Well-formed commands whose ids or texts are hostile: each must be refused
    with a typed error. Some name a real paused run and carry one bad field."""
    token = st.sampled_from(HOSTILE_TOKENS)
    real = st.sampled_from(run_ids)
    any_run = real | token
    ident = draw(st.none() | st.text(max_size=30) | st.sampled_from(HOSTILE_TOKENS))
    kind = draw(st.sampled_from(["start", "status", "resume", "approve", "abort", "watch"]))
    if kind == "start":
        bad_doc, bad_by = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
        return Start(
            id=ident,
            doc_id=draw(token) if bad_doc else "doc-fuzz-1",
            started_by=draw(token) if bad_by else OPERATOR,
        )
    if kind == "status":
        return StatusOf(id=ident, run_id=draw(token))
    if kind == "resume":
        run_id = draw(any_run)
        kb_id = draw(st.sampled_from(HOSTILE_KB_IDS))
        return Resume(id=ident, run_id=run_id, approval_kb_id=kb_id)
    if kind == "abort":
        # a real run only with a bad reason or identity: never a legitimate abort
        run_id = draw(any_run)
        if run_id in run_ids and draw(st.booleans()):
            return AbortRun(id=ident, run_id=run_id, reason="x" * 2001, by=OPERATOR)
        return AbortRun(id=ident, run_id=run_id, reason="r", by=draw(token))
    if kind == "watch":
        return Watch(id=ident, run_id=draw(token))
    # approve: a hostile run id, approver or reason (too long); digests and nonces
    # that cannot be the request's
    which = draw(st.sampled_from(["run_id", "approver", "reason"]))
    return SubmitApproval(
        id=ident,
        run_id=draw(token) if which == "run_id" else draw(real),
        gate=draw(st.sampled_from(list(Gate))),
        request_digest=draw(st.sampled_from(["", "0" * 64, "../x", "\x00", "d" * 10_000])),
        nonce=draw(st.sampled_from(["", "n", "\x00", "../x"])),
        decision=draw(st.sampled_from(list(Decision))),
        approver=draw(token) if which == "approver" else REVIEWER,
        reason="r" * 2001 if which == "reason" else "fuzz",
        review_decision_id=draw(st.none() | st.sampled_from(HOSTILE_TOKENS)),
    )


# --- the tests ---------------------------------------------------------------------
# Each test ends by checking the daemon still serves and no run moved, so it proves
# that alone, whatever ran before it on the module's daemon. The property runs inside
# the test because a @given test has no place to check after its last example.
def test_garbage_frames_get_typed_errors_and_change_nothing(fuzzed: Fuzzed) -> None:
    @FUZZ
    @given(payload=payloads())
    def garbage_gets_typed_errors(payload: bytes) -> None:
        expected, watch = expectations(payload, set(fuzzed.runs))
        got = replies(fuzzed.socket, payload)
        check_replies(got, expected, watch)
        assert sidecars_stored(fuzzed.state_dir) == fuzzed.sidecars

    garbage_gets_typed_errors()
    fuzzed.assert_untouched()


def test_hostile_ids_in_valid_commands_are_refused_with_typed_errors(fuzzed: Fuzzed) -> None:
    # The runs in the order of their documents, not of their random ids: a derandomised
    # draw then names the same run (at SG_1 or at SG_2) on every run of the suite.
    run_ids = [r.run_id for r in sorted(fuzzed.runs.values(), key=lambda r: r.doc_id)]

    @FUZZ
    @given(data=st.data())
    def hostile_ids_are_refused(data: st.DataObject) -> None:
        command = data.draw(hostile_commands(run_ids))
        before = contents(fuzzed.state_dir)
        got = replies(fuzzed.socket, encode(command))
        assert len(got) == 1, got
        [reply] = got
        assert isinstance(reply, Error), (command, reply)
        assert reply.code != "E_INTERNAL", (command, reply)
        assert reply.id == command.id
        # refused before anything was stored: no KB doc, no sidecar, no consumption
        assert contents(fuzzed.state_dir) == before

    hostile_ids_are_refused()
    fuzzed.assert_untouched()


def too_long_ping(size: int) -> bytes:
    """A well-formed ping frame of exactly ``size`` bytes (its newline not counted)."""
    head, tail = b'{"cmd":"ping","id":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def assert_refused_as_too_large(lines: list[bytes]) -> None:
    assert len(lines) == 1, [line[:100] for line in lines]  # one error, then closed
    reply = decode_reply(lines[0])
    assert isinstance(reply, Error), reply
    assert reply.code == "E_FRAME_TOO_LARGE"


@pytest.mark.parametrize(
    "size",
    [MAX_FRAME_BYTES + (1 << 16) + 1, 2 * MAX_FRAME_BYTES, 4 * MAX_FRAME_BYTES + 3],
    ids=["1MiB+64KiB+1", "2MiB", "4MiB+3"],
)
def test_a_frame_over_the_limit_is_refused_then_the_connection_closed(
    fuzzed: Fuzzed, size: int
) -> None:
    # then a valid ping on the same connection: never answered, the connection is gone
    lines, _ = exchange(fuzzed.socket, too_long_ping(size) + b"\n" + encode(Ping(id="next")))
    assert_refused_as_too_large(lines)
    fuzzed.assert_untouched()


def test_an_endless_frame_without_a_newline_is_refused_then_closed(fuzzed: Fuzzed) -> None:
    lines, _ = exchange(fuzzed.socket, b"\x00\xff" * MAX_FRAME_BYTES)
    assert_refused_as_too_large(lines)
    fuzzed.assert_untouched()


@pytest.mark.parametrize("over", [1, 100])
def test_a_frame_just_over_the_limit_is_refused(fuzzed: Fuzzed, over: int) -> None:
    """MAX_FRAME_BYTES is the limit, not "the limit, or a bit more when the newline
    happens to arrive in the same read"."""
    lines, _ = exchange(fuzzed.socket, too_long_ping(MAX_FRAME_BYTES + over) + b"\n")
    assert_refused_as_too_large(lines)
    fuzzed.assert_untouched()


def test_a_frame_just_under_the_limit_is_answered(fuzzed: Fuzzed) -> None:
    frame = too_long_ping(MAX_FRAME_BYTES - 1)
    [first, second] = replies(fuzzed.socket, frame + b"\n" + encode(Ping(id="second")))
    assert isinstance(first, Pong), first
    assert first.id is not None
    assert len(first.id) == MAX_FRAME_BYTES - 1 - len(b'{"cmd":"ping","id":""}')
    assert isinstance(second, Pong)
    assert second.id == "second"


@pytest.mark.parametrize(
    "command",
    [
        Start(id="h1", doc_id="../x", started_by=OPERATOR, wait=False),
        Start(id="h2", doc_id="doc-fuzz-1", started_by="../x", wait=False),
        Start(id="h3", doc_id="x" * 10_000, started_by=OPERATOR, wait=False),
        Resume(id="h4", run_id="run-0000000000000000", wait=False),
        Resume(id="h5", run_id="run-0000000000000000", approval_kb_id="../x", wait=False),
    ],
    ids=["start-doc", "start-by", "start-long", "resume-unknown", "resume-kb-id"],
)
def test_bad_input_is_refused_also_when_the_client_does_not_wait(
    fuzzed: Fuzzed, command: AnyCommand
) -> None:
    """``wait: false`` changes when the answer comes, not whether bad input is
    refused: "accepted" for a run that can never exist is not a typed error."""
    reply = ask(fuzzed.socket, command)
    assert isinstance(reply, Error), reply
    assert reply.code in {"E_INVALID_ID", "E_UNKNOWN_RUN"}, reply
    assert reply.id == command.id
    fuzzed.assert_untouched()


@pytest.mark.parametrize("wait", [True, False])
def test_a_live_start_without_execution_enabled_is_refused(fuzzed: Fuzzed, wait: bool) -> None:
    command = Start(id="live", doc_id="doc-fuzz-1", started_by=OPERATOR, mode=Mode.LIVE, wait=wait)
    reply = ask(fuzzed.socket, command)
    assert not isinstance(reply, Accepted), reply
    assert isinstance(reply, Error), reply
    assert reply.code == "E_EXECUTION_NOT_AUTHORIZED", reply
    assert reply.id == "live"
    fuzzed.assert_untouched()


# --- connection churn and memory --------------------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


CHURN_KINDS = [
    b"",  # open, close
    b'{"cmd":"pi',  # half a frame
    b'{"cmd":"status","run_id":"run-00000',  # half a frame
    encode(Ping(id="churn")),  # a whole frame, the reply never read
    b"garbage\n" + b'{"cmd":',  # an answered bad frame, then half a frame
    b"x" * 200_000,  # 200 KB of an unterminated frame
    encode(ListRuns(id="churn")),  # a real command, the reply never read
]


def churn(path: Path, connections: int, batch: int = 100) -> None:
    """Open ``batch`` connections at once, send each its kind of bytes, close them
    all without reading; ``connections`` in all."""
    done = 0
    while done < connections:
        opened: list[socket.socket] = []
        try:
            for i in range(min(batch, connections - done)):
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                opened.append(conn)
                conn.settimeout(IO_TIMEOUT)
                conn.connect(str(path))
                payload = CHURN_KINDS[(done + i) % len(CHURN_KINDS)]
                if payload:
                    conn.sendall(payload)
        finally:
            for conn in opened:
                conn.close()
        done += len(opened)


def test_thousands_of_connections_leave_memory_bounded(fuzzed: Fuzzed) -> None:
    pid = fuzzed.daemon.process.pid
    churn(fuzzed.socket, 300)  # warm up: first-time allocations are not a leak
    fuzzed.assert_untouched()
    rss_before, fds_before = rss_kib(pid), open_fds(pid)
    churn(fuzzed.socket, 2000)
    fuzzed.assert_untouched()
    rss_after, fds_after = rss_kib(pid), open_fds(pid)
    print(f"\ndaemon VmRSS {rss_before} KiB before 2000 connections, {rss_after} KiB after")
    assert rss_after - rss_before < 50 * 1024
    assert fds_after - fds_before < 200  # at most the last batch still closing


# --- a client that goes right after sending ------------------------------------------
class Watcher:
    """A raw ``watch`` connection read inline: its frame is on the wire before
    anything the test does next, and every event it reads is kept."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)
        self.seen: list[Event] = []

    def saw(self, event: str, **detail: str) -> bool:
        return any(
            e.event == event and all(e.detail.get(k) == v for k, v in detail.items())
            for e in self.seen
        )

    async def until(self, done: Callable[[], bool]) -> None:
        """Read events until ``done()``; the guard only turns a hang into a failure."""
        with anyio.fail_after(IO_TIMEOUT):
            while not done():
                reply = decode_reply(await self.reader.receive_until(b"\n", MAX_FRAME_BYTES))
                assert isinstance(reply, Event), reply
                self.seen.append(reply)


@pytest.mark.subprocess
@pytest.mark.anyio
async def test_a_client_gone_right_after_sending_leaves_no_half_applied_command(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """Start and approve run as jobs of the daemon: a client that sends one and
    disconnects without reading loses the answer, never half the command. Here
    the whole command happens (the run either advances fully or not at all)."""
    state_dir = tmp_path / "state"
    async with embedded_config(state_dir) as config:
        sources = config.target.sources
        assert isinstance(sources, SqliteSources)
        for doc_id in ("doc-gone-1", "doc-gone-2"):
            await sources.publish(doc_id, SAMPLE.read_bytes())
    daemon = start_daemon(state_dir)
    daemons.append(daemon)
    sock = daemon.socket

    async with Client(sock) as client:
        started = await client.request(Start(doc_id="doc-gone-1", started_by=OPERATOR))
    assert isinstance(started, RunInfo), started
    run = started.run
    assert run.waiting is not None
    run_id = run.run_id

    async with await anyio.connect_unix(sock) as stream:
        await stream.send(encode(Watch(id="w")))
        watcher = Watcher(stream)
        # The watcher is subscribed once it sees an event: a refused resume makes one.
        async with Client(sock) as client:
            refused = await client.request(Resume(run_id=run_id))
        assert isinstance(refused, Error), refused
        assert refused.code == "STOP_APPROVAL_REQUIRED"
        await watcher.until(lambda: watcher.saw("approval_refused"))

        approve = SubmitApproval(
            run_id=run_id,
            gate=Gate.SG_1,
            request_digest=run.waiting.request_digest,
            nonce=run.waiting.nonce,
            decision=Decision.APPROVE,
            approver=REVIEWER,
            reason="reviewed, then the laptop lid closed",
        )
        for command in (Start(doc_id="doc-gone-2", started_by=OPERATOR), approve):
            gone = await anyio.connect_unix(sock)
            await gone.send(encode(command))
            await gone.aclose()  # without reading a byte
        await watcher.until(
            lambda: (
                watcher.saw(
                    "run_state_changed", doc_id="doc-gone-2", to_state="AWAITING_CUT_AUTHORIZATION"
                )
                and watcher.saw(
                    "run_state_changed",
                    doc_id="doc-gone-1",
                    to_state="AWAITING_LIFECYCLE_AUTHORIZATION",
                )
            )
        )
    seen = watcher.seen

    async with Client(sock) as client:
        listed = await client.request(ListRuns())
    assert isinstance(listed, RunList)
    by_doc: dict[str, list[RunSummary]] = {}
    for summary in listed.runs:
        by_doc.setdefault(summary.doc_id, []).append(summary)
    # the start: one whole run, walked to its first gate
    [second] = by_doc["doc-gone-2"]
    assert second.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert second.phases_passed == 5
    assert second.waiting is not None
    # the approval: stored once, consumed once, and the run moved to the next gate
    [first] = by_doc["doc-gone-1"]
    assert first.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    assert first.phases_passed == 9
    assert first.waiting is not None
    assert first.waiting.gate is Gate.SG_2
    stored = query(
        state_dir, "SELECT kb_id FROM kb_docs WHERE kb_id LIKE ?", (f"approvals/{run_id}/SG_1-%",)
    )
    assert len(stored) == 1
    assert len(consumed_approvals(state_dir)) == 1
    consumed = [e for e in seen if e.event == "approval_consumed"]
    assert [(e.run_id, e.detail.get("gate")) for e in consumed] == [(run_id, "SG_1")]
    assert daemon.stop() == 0
