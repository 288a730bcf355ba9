"""Every reply the daemon sends fits the client's frame reader: one longer than a frame
is replaced by ``E_REPLY_TOO_LARGE`` for the same id, whatever command produced it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cutter.core.mode import Mode
from cutter.core.protocol import MAX_FRAME_BYTES, Error, Pong, RunInfo, RunSummary, decode_reply
from cutter.core.states import RunState
from cutter.daemon.transport import send

pytestmark = pytest.mark.anyio


class _Recorder:
    """The sending half of a byte stream, keeping what was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, item: bytes) -> None:
        self.sent.append(item)


def _run(stop_message: str) -> RunInfo:
    summary = RunSummary(
        run_id="run-0123456789abcdef",
        doc_id="doc-1",
        mode=Mode.DRY_RUN,
        state=RunState.FAILED,
        started_by="ann",
        stop_code="STOP_PHASE_FAILED",
        stop_message=stop_message,
        phases_passed=1,
        waiting=None,
        updated_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    return RunInfo(id="q-7", run=summary)


async def test_a_reply_over_the_frame_is_sent_as_a_typed_error_for_its_id() -> None:
    stream = _Recorder()
    assert await send(stream, _run("x" * MAX_FRAME_BYTES))  # type: ignore[arg-type]
    [data] = stream.sent
    assert len(data) <= MAX_FRAME_BYTES
    reply = decode_reply(data)
    assert isinstance(reply, Error)
    assert (reply.id, reply.code) == ("q-7", "E_REPLY_TOO_LARGE")


async def test_a_reply_that_fits_is_sent_as_it_is() -> None:
    stream = _Recorder()
    fits = _run("y" * (MAX_FRAME_BYTES - 4096))
    assert await send(stream, fits)  # type: ignore[arg-type]
    assert decode_reply(stream.sent[0]) == fits


async def test_the_clients_own_id_echoed_back_does_not_count() -> None:
    """A client that sent an id near the frame limit gets it back on its answer."""
    stream = _Recorder()
    long_id = "i" * (MAX_FRAME_BYTES - 1024)
    pong = Pong(id=long_id)
    assert await send(stream, pong)  # type: ignore[arg-type]
    assert decode_reply(stream.sent[0]) == pong
