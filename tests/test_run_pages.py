"""The bounds of the run list, without a daemon: a ``runs`` reply fits in one frame
whatever its runs hold, and a client given a reply longer than it reads refuses it
with ``E_REPLY_TOO_LARGE`` instead of dying of ``anyio.DelimiterNotFound``."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from cutter.cli.main import main
from cutter.core.mode import Mode
from cutter.core.protocol import MAX_FRAME_BYTES, GateWait, Ping, RunList, RunSummary, encode
from cutter.core.route import Gate
from cutter.core.run_pages import (
    MAX_LIMIT,
    PAGE_BYTES,
    RunFilter,
    decode_cursor,
    encode_cursor,
    fit_page,
)
from cutter.core.states import RunState
from cutter.daemon.client import Client, ReplyTooLarge

LONGEST_ID = "r" * 128  # MAX_ID_LENGTH
AT = datetime(2026, 12, 6, tzinfo=UTC)


def largest_summary(n: int, message: str) -> RunSummary:
    """A summary with every bounded field at its bound, ``message`` as its stop."""
    return RunSummary(
        run_id=f"{n:08d}" + LONGEST_ID[8:],
        doc_id=LONGEST_ID,
        mode=Mode.DRY_RUN,
        state=RunState.AWAITING_LIFECYCLE_AUTHORIZATION,
        started_by=LONGEST_ID,
        stop_code="STOP_APPROVAL_REQUIRED",
        stop_message=message,
        phases_passed=12,
        waiting=GateWait(
            gate=Gate.SG_2,
            since=AT,
            request_kb_id="k" * 512,
            request_digest="d" * 64,
            nonce="n" * 32,
            approvals=9,
            required_approvals=9,
        ),
        updated_at=AT,
        started_by_principal=LONGEST_ID,
    )


@pytest.mark.parametrize(
    "message",
    [
        "",
        "\x01" * 2000,  # escapes to six bytes a character
        "é" * 300_000,  # one run's message over a quarter of the frame
        "\x01" * 2_000_000,  # one run's message alone over the frame
    ],
)
def test_the_largest_page_of_the_largest_runs_fits_in_a_frame(message: str) -> None:
    runs = [largest_summary(n, message) for n in range(MAX_LIMIT + 1)]
    page, more = fit_page(runs, MAX_LIMIT)
    assert more
    assert page  # never an empty page while runs remain: paging always advances
    assert [r.run_id for r in page] == [r.run_id for r in runs[: len(page)]]
    cursor = encode_cursor(page[-1].run_id, RunFilter(state=RunState.FAILED, doc_id=LONGEST_ID))
    reply = RunList(id="i" * 1000, runs=tuple(page), next_cursor=cursor)
    assert len(encode(reply)) <= MAX_FRAME_BYTES
    assert sum(len(encode(r)) for r in page) <= PAGE_BYTES
    if len(encode(runs[0])) > PAGE_BYTES:  # clipped, and saying so; status shows it whole
        assert page[0].stop_message is not None
        assert page[0].stop_message.endswith("(clipped: `cutter status` shows it whole)")
    else:
        assert page[0] == runs[0]
    assert decode_cursor(cursor, RunFilter(state=RunState.FAILED, doc_id=LONGEST_ID)) == (
        page[-1].run_id
    )


@pytest.fixture
def oversize_server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A socket that answers each connection's first frame with more than a frame:
    ``tails`` says what follows the 2 MiB (nothing, or a newline), one per connection."""
    path = tmp_path / "s.sock"
    tails: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):  # the client hangs up, as it should
                    conn.sendall(b"x" * (2 * MAX_FRAME_BYTES) + (tails.pop(0) if tails else b""))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, tails
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(timeout=10)


@pytest.mark.parametrize("tail", [b"", b"\n"])
def test_a_reply_over_the_frame_limit_is_a_typed_refusal(
    oversize_server: tuple[Path, list[bytes]], tail: bytes
) -> None:
    path, tails = oversize_server

    async def ask() -> None:
        async with Client(path) as client:
            await client.request(Ping())

    tails.append(tail)
    with pytest.raises(ReplyTooLarge) as caught:
        anyio.run(ask)
    assert caught.value.code == "E_REPLY_TOO_LARGE"
    tails.append(tail)
    result = CliRunner().invoke(main, ["runs", "--socket", str(path)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("E_REPLY_TOO_LARGE: "), result.stderr
    assert "Traceback" not in result.output
