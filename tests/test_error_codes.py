"""Every error code is closed, registered once, and travels in one form.

Each ``CutterError`` class registers its ``ErrorCode`` as it is defined; a refusal
goes from the gatekeeper through the supervisor to the runner as one
``RefusalInfo``, which the runner raises as the registered class; the daemon puts
that code on the wire and the client raises the same class again.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

import cutter
from cutter.core.errors import (
    ApprovalConsumedAlready,
    CutterError,
    ErrorCode,
    PhaseStop,
    Refusal,
    RefusalInfo,
    StopCode,
    error_class,
    error_for,
    raise_refusal,
    registered,
)
from cutter.core.kbdocs import ApprovalRefusal
from cutter.core.protocol import Error, Pong, decode_reply, encode
from cutter.core.route import Gate
from cutter.daemon.client import expect, raised
from cutter.daemon.service import error_reply
from cutter.walk.messages import Refused, SupervisorReply
from tests._harness import (
    DOC_ID,
    OPERATOR,
    Rig,
    build_runner,
    write_approval,
    write_sg1_approval,
)


def _import_all() -> None:
    for info in pkgutil.walk_packages(cutter.__path__, "cutter."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def _subclasses(cls: type[CutterError]) -> Iterator[type[CutterError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _defining() -> list[type[CutterError]]:
    """Every class that sets its own code (in any module of the package)."""
    _import_all()
    return [c for c in [CutterError, *_subclasses(CutterError)] if "code" in c.__dict__]


ALL_CODES = list(ErrorCode)
REFUSAL_CODES = [c for c in ErrorCode if issubclass(registered().get(c, CutterError), Refusal)]


# --- nothing is hand-kept ---------------------------------------------------------------
def test_every_class_code_is_a_member_held_by_that_class_alone() -> None:
    classes = _defining()
    for cls in classes:
        assert isinstance(cls.code, ErrorCode), cls
        assert error_class(cls.code) is cls
    assert len({cls.code for cls in classes}) == len(classes)


@pytest.mark.subprocess
def test_every_member_has_a_class_once_error_classes_is_imported() -> None:
    # In a fresh interpreter: importing cutter.daemon.error_classes alone (what the client
    # does) must register every member, not whatever this test session imported.
    script = (
        "import cutter.daemon.error_classes, cutter.core.errors as e\n"
        "print(sorted(set(e.ErrorCode) - set(e.registered())))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
    assert set(registered()) == set(ErrorCode)


def test_a_code_outside_the_enum_or_held_already_fails_at_definition() -> None:
    before = registered()
    with pytest.raises(TypeError, match="UnknownRun's already"):

        class AnotherUnknownRun(CutterError):
            code = ErrorCode.UNKNOWN_RUN

    with pytest.raises(TypeError, match="not an ErrorCode member"):

        class Stringly(CutterError):
            code = "E_UNKNOWN_RUN"  # type: ignore[assignment]

    assert registered() == before


def test_member_names_and_stop_codes_agree_with_the_values() -> None:
    for code in ErrorCode:
        assert code.name == code.value.removeprefix("E_")
    for cls in _defining():
        if issubclass(cls, PhaseStop):
            assert cls.code.value == cls.stop_code.value, cls
    # The stop codes a run records and the error codes share their spelling.
    assert StopCode.KILL_SWITCH.value == ErrorCode.STOP_KILL_SWITCH.value
    assert StopCode.APPROVAL_REQUIRED.value == ErrorCode.STOP_APPROVAL_REQUIRED.value
    assert ErrorCode.STOP_DOCUMENT_BUSY.value == "STOP_DOCUMENT_BUSY"  # not a run's stop


# --- runner -> protocol -> client, every code -------------------------------------------
def _over_the_wire(exc: CutterError) -> CutterError:
    """What the daemon answers for ``exc`` (its own conversion and encoder), read back
    by the client's decoder and raised as the client raises it."""
    reply = decode_reply(encode(error_reply("c-1", exc)))
    assert isinstance(reply, Error)
    assert reply.id == "c-1"
    with pytest.raises(CutterError) as caught:
        expect(reply, Pong)
    assert type(caught.value) is type(raised(reply))
    return caught.value


@pytest.mark.parametrize("code", ALL_CODES, ids=str)
def test_every_code_reaches_the_client_as_its_class(code: ErrorCode) -> None:
    sent = error_for(code, f"why {code} was said", error_id="e-1")
    assert type(sent) is error_class(code)
    got = _over_the_wire(sent)
    assert type(got) is type(sent)
    assert (got.code, got.message) == (code, f"why {code} was said")
    wire = encode(error_reply(None, sent))
    assert f'"code":"{code.value}"'.encode() in wire  # the spelling on the wire is the value


@pytest.mark.parametrize("code", REFUSAL_CODES, ids=str)
def test_every_refusal_reply_is_raised_by_the_runner_as_its_class(code: ErrorCode) -> None:
    info = RefusalInfo(code=code, message=f"refused: {code}", approval_kb_id="approvals/r/SG_1-1")
    # The supervisor's reply is a msgspec value: it survives its own codec unchanged.
    reply: SupervisorReply = Refused(refusal=info)
    codec = msgspec.json.Decoder(SupervisorReply)
    assert codec.decode(msgspec.json.encode(reply)) == reply
    with pytest.raises(Refusal) as caught:
        raise_refusal("run-1", info)
    exc = caught.value
    assert type(exc) is error_class(code)
    assert (exc.code, exc.message, exc.run_id) == (code, f"refused: {code}", "run-1")
    if isinstance(exc, ApprovalConsumedAlready):
        assert exc.approval_kb_id == "approvals/r/SG_1-1"
    assert type(_over_the_wire(exc)) is type(exc)


# --- gatekeeper -> runner -> protocol -> client, the refusals a gate produces -----------

Setup = Callable[[Rig, str], Awaitable[str | None]]


async def _none(rig: Rig, run_id: str) -> str | None:
    return None


async def _missing(rig: Rig, run_id: str) -> str | None:
    return f"approvals/{run_id}/SG_1-nowhere"


async def _unreadable(rig: Rig, run_id: str) -> str | None:
    kb_id = await write_sg1_approval(rig, run_id)
    rig.overwrite_kb_doc(kb_id, b"not a doc")
    return kb_id


async def _other_run(rig: Rig, run_id: str) -> str | None:
    return await write_sg1_approval(rig, run_id, for_run="run-0000000000000000")


async def _other_gate(rig: Rig, run_id: str) -> str | None:
    return await write_approval(rig, run_id, Gate.SG_2, review_decision_id="review-1")


async def _stale(rig: Rig, run_id: str) -> str | None:
    return await write_sg1_approval(rig, run_id, request_digest="0" * 64)


async def _expired(rig: Rig, run_id: str) -> str | None:
    kb_id = await write_sg1_approval(rig, run_id)
    rig.clock.advance(timedelta(days=2))  # past the policy's 24 h
    return kb_id


async def _self(rig: Rig, run_id: str) -> str | None:
    return await write_sg1_approval(rig, run_id, approver=OPERATOR)


async def _spent(rig: Rig, run_id: str) -> str | None:
    kb_id = await write_sg1_approval(rig, run_id)
    await rig.runner.resume(run_id, kb_id)  # passes SG_1; the run now waits at SG_2
    return kb_id


async def _request_damaged(rig: Rig, run_id: str) -> str | None:
    sidecar = await rig.run_store.load(run_id)
    assert sidecar.pending_gate is not None
    rig.delete_kb_doc(sidecar.pending_gate.request_kb_id)
    return await write_sg1_approval(rig, run_id)


GATE_REFUSALS: list[tuple[ErrorCode, Setup]] = [
    (ErrorCode.STOP_APPROVAL_REQUIRED, _none),
    (ErrorCode.APPROVAL_NOT_FOUND, _missing),
    (ErrorCode.APPROVAL_INVALID, _unreadable),
    (ErrorCode.APPROVAL_WRONG_RUN, _other_run),
    (ErrorCode.APPROVAL_WRONG_GATE, _other_gate),
    (ErrorCode.APPROVAL_STALE, _stale),
    (ErrorCode.APPROVAL_EXPIRED, _expired),
    (ErrorCode.APPROVAL_SELF, _self),
    (ErrorCode.APPROVAL_CONSUMED_ALREADY, _spent),
    (ErrorCode.GATE_REQUEST_DAMAGED, _request_damaged),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("code", "setup"), GATE_REFUSALS, ids=[str(c) for c, _ in GATE_REFUSALS])
async def test_a_gate_refusal_reaches_the_client_as_the_class_the_gatekeeper_raised(
    tmp_path: Path, code: ErrorCode, setup: Setup
) -> None:
    rig = build_runner(tmp_path)
    async with rig.runner:
        run_id = (await rig.runner.cut(DOC_ID, started_by=OPERATOR)).run_id
        kb_id = await setup(rig, run_id)
        before = await rig.run_store.load(run_id)
        with pytest.raises(Refusal) as caught:
            await rig.runner.resume(run_id, kb_id)
        assert await rig.run_store.load(run_id) == before  # refused: the run is unchanged
        refusals = [await rig.kb.get(k) for k in await rig.kb.list(f"runs/{run_id}/refusals")]
    exc = caught.value
    assert type(exc) is error_class(code)
    assert (exc.code, exc.run_id) == (code, run_id)
    # The gatekeeper's own record of it carries the same code and line.
    assert [(d.code, d.message) for d in refusals if isinstance(d, ApprovalRefusal)] == [
        (code, exc.message)
    ]
    got = _over_the_wire(exc)
    assert type(got) is type(exc)
    assert (got.code, got.message) == (code, exc.message)


def test_an_error_code_this_client_does_not_know_keeps_the_daemons_words() -> None:
    from cutter.core.wire_errors import UnknownCode

    frame = (
        b'{"reply":"error","v":1,"id":"7","code":"E_FROM_A_NEWER_DAEMON",'
        b'"message":"the daemon refused it for a new reason","error_id":"abc123"}'
    )
    reply = decode_reply(frame)
    assert isinstance(reply, Error)
    assert reply.code is ErrorCode.UNKNOWN_CODE
    assert reply.id == "7"
    with pytest.raises(UnknownCode) as refused:
        expect(reply, Pong)
    assert refused.value.message == (
        "E_FROM_A_NEWER_DAEMON: the daemon refused it for a new reason"
    )
    assert refused.value.error_id == "abc123"


def test_a_reply_of_an_unknown_kind_is_still_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_reply(b'{"reply":"from_the_future","v":1}')
    with pytest.raises(msgspec.ValidationError):  # an error frame missing its message
        decode_reply(b'{"reply":"error","v":1,"code":"E_FROM_A_NEWER_DAEMON"}')
