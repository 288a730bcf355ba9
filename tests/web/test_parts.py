"""The review page's pure parts: the --http address, the source cut at unit
boundaries, the inbox's "who may still approve", and the page's proof."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from cutter.core.errors import ApprovalSignatureRequired, PolicyInvalid
from cutter.core.kbdocs import Approval, Decision
from cutter.core.mode import Mode
from cutter.core.policy import GateRule, Policy, parse_policy
from cutter.core.review import UnitView
from cutter.core.route import Gate
from cutter.walk.approval_proof import prove
from cutter.walk.policy_book import gate_policy
from cutter.web.address import bind, parse_address
from cutter.web.errors import HttpAddressRefused, HttpPortBusy
from cutter.web.pages import may_still_approve, segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("127.1.2.3:8080", ("127.1.2.3", 8080)),
        ("localhost:65535", ("127.0.0.1", 65535)),
        ("[::1]:0", ("::1", 0)),
    ],
)
def test_loopback_addresses_are_taken(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0.0:8080",
        "[::]:8080",
        "10.0.0.5:80",
        "192.168.1.1:0",
        "example.com:80",
        "127.0.0.1",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:http",
        ":8080",
        "",
    ],
)
def test_anything_but_loopback_host_and_port_is_refused(text: str) -> None:
    with pytest.raises(HttpAddressRefused):
        parse_address(text)


def test_a_busy_port_is_a_typed_refusal() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        with pytest.raises(HttpPortBusy, match="in use"):
            bind("127.0.0.1", holder.getsockname()[1])
    finally:
        holder.close()


def unit(ordinal: int, start: int, end: int) -> UnitView:
    return UnitView(
        ordinal=ordinal,
        label=f"U{ordinal}",
        kind="unit",
        number=None,
        path=(),
        start=start,
        end=end,
        size=end - start,
        region_sha="0" * 64,
        first_line="",
    )


def test_the_source_is_cut_at_unit_byte_ranges_showing_every_byte_once() -> None:
    data = "héllo wörld, and the rest".encode()
    units = (unit(1, 7, 13), unit(0, 0, 6), unit(2, 10, 16))  # out of order, overlapping
    cut = segments(data, units)
    assert b"".join(s.text.encode() for s in cut) == data
    assert [(s.start, s.end, s.unit.ordinal if s.unit else None) for s in cut] == [
        (0, 6, 0),
        (6, 7, None),
        (7, 13, 1),
        (13, 16, 2),
        (16, len(data), None),
    ]


def test_who_may_still_approve_leaves_out_the_starter_and_those_counted() -> None:
    named = GateRule(approvers=("bob", "cy", "ann"), required_approvals=2)
    assert may_still_approve(named, "ann", ("bob",)) == "cy"
    assert may_still_approve(named, "ann", ("bob", "cy")) == "nobody"
    anyone = GateRule()
    assert may_still_approve(anyone, "ann", ()) == "any authenticated principal but ann"
    selfish = GateRule(allow_self_approval=True)
    assert may_still_approve(selfish, "ann", ()) == "anyone"


def approval(**fields: object) -> Approval:
    values: dict[str, object] = {
        "run_id": "run-0123456789abcdef",
        "gate": Gate.SG_1,
        "request_digest": "a" * 64,
        "nonce": "n" * 32,
        "decision": Decision.APPROVE,
        "approver": "bob",
        "reason": "read it",
        "issued_at": datetime(2026, 12, 6, tzinfo=UTC),
        "principal": "bob",
        "via": "web",
    }
    values.update(fields)
    return Approval(**values)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_the_pages_proof_passes_only_a_gate_that_takes_web() -> None:
    kb_id = "approvals/x"
    proven = await prove(approval(), kb_id, proofs=("web",), reviewer_keys={})
    assert proven.proof == "web"
    for proofs in (("peer",), ("signature",), ("peer", "database")):
        with pytest.raises(ApprovalSignatureRequired, match="review page"):
            await prove(approval(), kb_id, proofs=proofs, reviewer_keys={})
    # A page decision stored for someone else than the link's principal proves nothing.
    with pytest.raises(ApprovalSignatureRequired):
        await prove(approval(principal="review-bot"), kb_id, proofs=("web",), reviewer_keys={})
    # And a socket decision is no page decision.
    with pytest.raises(ApprovalSignatureRequired):
        await prove(approval(via=None), kb_id, proofs=("web",), reviewer_keys={})


def test_live_proofs_replace_proofs_for_live_runs_only() -> None:
    rule = GateRule(proofs=("peer", "web"), live_proofs=("signature",))
    assert rule.proofs_for(Mode.DRY_RUN) == ("peer", "web")
    assert rule.proofs_for(Mode.LIVE) == ("signature",)
    assert GateRule(proofs=("web",)).proofs_for(Mode.LIVE) == ("web",)
    resolved = gate_policy(Policy(admins=("root",), sg_2=rule), "doc", Gate.SG_2)
    assert resolved.proofs_for(Mode.LIVE) == ("signature",)
    assert resolved.proofs_for(Mode.DRY_RUN) == ("peer", "web")


@pytest.mark.parametrize(
    "text",
    [
        'admins = ["root"]\n[sg_1]\nlive_proofs = []',
        'admins = ["root"]\n[sg_1]\napprovers = ["bob"]\nlive_proofs = ["signature"]',
        'admins = ["root"]\n[sg_1]\nlive_proofs = ["paper"]',
    ],
)
def test_a_live_proofs_no_approval_could_pass_is_refused(text: str) -> None:
    with pytest.raises(PolicyInvalid):
        parse_policy(text, "toml")
