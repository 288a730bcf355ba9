"""Signed approvals (issue 11, part 3): a gate that takes signatures only is passed by
a decision its approver signed with a key the *policy* lists, and by nothing else —
not an unsigned or hand-written approval, not another key, not a signature made for
another request, nonce or decision, not damaged signature bytes. Real ed25519 keys,
made by ``ssh-keygen`` in the test's own directory; the real ``ssh-keygen -Y verify``."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec
import pytest

from cutter.core.errors import (
    ApprovalSignatureInvalid,
    ApprovalSignatureRequired,
    GateRefusal,
    PolicyInvalid,
    SignatureMalformed,
)
from cutter.core.kbdocs import Approval, ApprovalRefusal, Decision
from cutter.core.policy import parse_policy
from cutter.core.principals import Caller
from cutter.core.protocol import ApprovalStored, Error, Ping, Pong, SubmitApproval
from cutter.core.route import Gate
from cutter.core.signing import NAMESPACE, allowed_signers, approval_payload
from cutter.core.states import RunState
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.runtime.sshsig import sign
from cutter.walk.approval_proof import signed_payload
from cutter.walk.policy_book import current, default_policy, replace
from tests._harness import DOC_ID, OPERATOR, REVIEWER, REVIEWER_2, Rig, build_runner
from tests._harness import write_sg1_approval as write_unsigned


@dataclass(frozen=True)
class Key:
    private: Path
    public: str


def make_key(where: Path, name: str) -> Key:
    where.mkdir(parents=True, exist_ok=True)
    path = where / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Key(path, path.with_suffix(".pub").read_text().strip())


def policy_text(reviewer_key: Key, proofs: str = '["signature"]') -> str:
    return f"""
admins = ["root"]
[reviewer_keys]
"{REVIEWER}" = ["{reviewer_key.public}"]
[sg_1]
approvers = ["{REVIEWER}", "{REVIEWER_2}"]
proofs = {proofs}
"""


async def set_policy(rig: Rig, text: str) -> None:
    before = await current(rig.kb, default_policy(rig.runner.config.policy, "root"))
    await replace(rig.kb, before, parse_policy(text, "toml"), by="root", at=rig.clock())


async def write_signed(
    rig: Rig, run_id: str, key: Key, *, signed_as: dict[str, object] | None = None, **fields: object
) -> str:
    """An approval of the open SG_1 request signed with ``key``: by default over its own
    fields; ``signed_as`` signs other values (a signature made for another decision)
    while the stored approval keeps its own; ``fields`` forges the stored ones."""
    sidecar = await rig.run_store.load(run_id)
    gate = sidecar.pending_gate
    assert gate is not None
    approval = Approval(
        run_id=run_id,
        gate=Gate.SG_1,
        request_digest=gate.request_digest,
        nonce=gate.nonce,
        decision=Decision.APPROVE,
        approver=REVIEWER,
        reason="plan matches the charter",
        issued_at=rig.clock(),
    )
    payload = signed_payload(msgspec.structs.replace(approval, **(signed_as or {})))
    signature = await anyio.to_thread.run_sync(lambda: sign(payload, key.private))
    approval = msgspec.structs.replace(approval, signature=signature, **fields)
    kb_id = f"approvals/{run_id}/SG_1-signed-{len(await rig.kb.list('approvals'))}"
    await rig.kb.put(kb_id, approval)
    return kb_id


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Key]:
    return {name: make_key(tmp_path / "keys", name) for name in ("bob", "mallory")}


# -- the payload and the policy (pure) -----------------------------------------------


def test_the_payload_changes_with_every_field_it_signs() -> None:
    base: dict[str, object] = {
        "run_id": "run-1",
        "gate": Gate.SG_1,
        "request_digest": "a" * 64,
        "nonce": "n1",
        "decision": "approve",
        "approver": "bob",
        "issued_at": datetime(2026, 5, 20, 9, tzinfo=UTC),
        "review_decision_id": None,
    }
    other: dict[str, object] = {
        "run_id": "run-2",
        "gate": Gate.SG_2,
        "request_digest": "b" * 64,
        "nonce": "n2",
        "decision": "reject",
        "approver": "cy",
        "issued_at": datetime(2026, 5, 20, 9, 0, 0, 1, tzinfo=UTC),
        "review_decision_id": "rd-1",
    }
    payload = approval_payload(**base)  # type: ignore[arg-type]
    assert payload.startswith(b"iu-cutter-approval-v1\nrun_id=run-1\n")
    for name, value in other.items():
        assert approval_payload(**{**base, name: value}) != payload, name  # type: ignore[arg-type]
    # A value cannot smuggle in a line of its own.
    with pytest.raises(SignatureMalformed):
        approval_payload(**{**base, "nonce": "n1\napprover=mallory"})  # type: ignore[arg-type]


def test_policy_keys_are_checked_and_reduced_to_type_and_key(keys: dict[str, Key]) -> None:
    policy = parse_policy(policy_text(keys["bob"]), "toml")
    assert policy.reviewer_keys == {REVIEWER: (keys["bob"].public,)}
    line = allowed_signers(REVIEWER, policy.reviewer_keys)
    kind, blob, _comment = keys["bob"].public.split(" ")
    assert line == f'{REVIEWER} namespaces="{NAMESPACE}" {kind} {blob}\n'
    assert allowed_signers(REVIEWER_2, policy.reviewer_keys) == ""
    for bad in (
        f"cert-authority {keys['bob'].public}",  # an option smuggled in front
        "ssh-ed25519 not*base64",
        "",
    ):
        with pytest.raises(PolicyInvalid):
            parse_policy(policy_text(Key(Path(), bad)), "toml")


def test_a_signature_only_gate_needs_enough_approvers_with_keys(keys: dict[str, Key]) -> None:
    text = policy_text(keys["bob"]).replace("[sg_1]", "[sg_1]\nrequired_approvals = 2")
    with pytest.raises(PolicyInvalid, match="reviewer_keys has keys for 1"):
        parse_policy(text, "toml")
    parse_policy(text.replace('["signature"]', '["signature", "peer"]'), "toml")


# -- the gatekeeper ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_decision_signed_by_a_listed_key_passes_and_its_proof_is_recorded(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]))
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        kb_id = await write_signed(rig, sc.run_id, keys["bob"])
        sc = await rig.runner.resume(sc.run_id, kb_id)
    [use] = sc.gate(Gate.SG_1).uses  # type: ignore[union-attr]
    assert (use.approval_kb_id, use.proof) == (kb_id, "signature")
    assert use.signer_key is not None
    assert use.signer_key.startswith("ED25519 SHA256:")
    assert await rig.run_store.consumed_by(kb_id) == sc.run_id
    assert sc.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION, sc.stop


FORGERIES: dict[str, tuple[type[GateRefusal], str, dict[str, object]]] = {
    # name: (refusal, signing key, how the stored approval differs from what was signed)
    "another reviewer's key": (ApprovalSignatureInvalid, "mallory", {}),
    "signed for another nonce": (ApprovalSignatureInvalid, "bob", {"signed_as": {"nonce": "n0"}}),
    "signed for another request": (
        ApprovalSignatureInvalid,
        "bob",
        {"signed_as": {"request_digest": "0" * 64}},
    ),
    "a reject's signature on an approve": (
        ApprovalSignatureInvalid,
        "bob",
        {"signed_as": {"decision": Decision.REJECT}},
    ),
    "signed as another approver": (
        ApprovalSignatureInvalid,
        "bob",
        {"signed_as": {"approver": REVIEWER_2}},
    ),
    "the signer's signature under a keyless approver": (
        ApprovalSignatureInvalid,
        "bob",
        {"approver": REVIEWER_2, "signed_as": {"approver": REVIEWER_2}},
    ),
}


async def assert_refused_and_unconsumed(
    rig: Rig, run_id: str, kb_id: str, refusal: type[GateRefusal]
) -> None:
    before = await rig.run_store.load(run_id)
    with pytest.raises(refusal):
        await rig.runner.resume(run_id, kb_id)
    assert await rig.run_store.load(run_id) == before  # the run is as it was
    assert await rig.run_store.consumed_by(kb_id) is None
    assert await rig.run_store.consumed_for(run_id) == []
    docs = [await rig.kb.get(k) for k in await rig.kb.list(f"runs/{run_id}/refusals")]
    assert refusal.code in [d.code for d in docs if isinstance(d, ApprovalRefusal)]


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(FORGERIES))
async def test_a_signature_that_does_not_sign_this_decision_with_a_policy_key_is_refused(
    tmp_path: Path, keys: dict[str, Key], case: str
) -> None:
    refusal, signer, forged = FORGERIES[case]
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]))
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        kb_id = await write_signed(rig, sc.run_id, keys[signer], **forged)
        await assert_refused_and_unconsumed(rig, sc.run_id, kb_id, refusal)
        # ... and the reviewer's real signature still passes afterwards.
        sc = await rig.runner.resume(sc.run_id, await write_signed(rig, sc.run_id, keys["bob"]))
        assert sc.state is not RunState.AWAITING_CUT_AUTHORIZATION


@pytest.mark.anyio
@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[: len(s) // 2] + "\n-----END SSH SIGNATURE-----\n",  # truncated
        lambda s: s.replace(s.splitlines()[2], "A" * len(s.splitlines()[2])),  # bytes changed
        lambda s: "-----BEGIN SSH SIGNATURE-----\nZ2FyYmFnZQ==\n-----END SSH SIGNATURE-----\n",
        lambda s: "not a signature at all",
        lambda s: s * 10,  # too long
    ],
    ids=["truncated", "altered", "garbage-base64", "not-armored", "oversized"],
)
async def test_damaged_signature_bytes_are_refused(
    tmp_path: Path, keys: dict[str, Key], damage: object
) -> None:
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]))
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        good = await rig.kb.get(await write_signed(rig, sc.run_id, keys["bob"]))
        assert isinstance(good, Approval)
        assert good.signature is not None
        bad = msgspec.structs.replace(good, signature=damage(good.signature))  # type: ignore[operator]
        kb_id = f"approvals/{sc.run_id}/SG_1-damaged"
        await rig.kb.put(kb_id, bad)
        await assert_refused_and_unconsumed(rig, sc.run_id, kb_id, ApprovalSignatureInvalid)


@pytest.mark.anyio
async def test_a_hand_written_approval_cannot_pass_a_signature_only_gate(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    """Who can write the KB (the state dir, the daemon's database role) can write an
    Approval with any approver and principal; without the reviewer's key, no signature."""
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]))
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        kb_id = await write_unsigned(rig, sc.run_id)
        await assert_refused_and_unconsumed(rig, sc.run_id, kb_id, ApprovalSignatureRequired)


@pytest.mark.anyio
async def test_a_gate_that_takes_peer_proof_still_refuses_a_bad_signature(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"], proofs='["peer", "signature"]'))
    async with rig.runner:
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        forged = await write_signed(rig, sc.run_id, keys["mallory"])
        await assert_refused_and_unconsumed(rig, sc.run_id, forged, ApprovalSignatureInvalid)
        sc = await rig.runner.resume(sc.run_id, await write_unsigned(rig, sc.run_id))
    [use] = sc.gate(Gate.SG_1).uses  # type: ignore[union-attr]
    assert (use.proof, use.signer_key) == (None, None)  # hand-written: no principal either


# -- through the daemon ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_daemon_stores_signed_decisions_and_refuses_the_rest_and_keeps_serving(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]))
    bob = Caller(REVIEWER, "unix uid=1001")
    async with rig.runner, anyio.create_task_group() as jobs:
        daemon = Daemon(rig.runner, rig.kill_switch, EventBus(), jobs, owner="root")
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        gate = sc.pending_gate
        assert gate is not None
        unsigned = SubmitApproval(
            run_id=sc.run_id,
            gate=Gate.SG_1,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            decision=Decision.APPROVE,
            approver=REVIEWER,
            reason="plan checked",
        )
        issued_at = rig.clock()
        payload = approval_payload(
            run_id=sc.run_id,
            gate=Gate.SG_1,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            decision="approve",
            approver=REVIEWER,
            issued_at=issued_at,
        )
        signature = sign(payload, keys["bob"].private)
        attempts = {
            "APPROVAL_SIGNATURE_REQUIRED": unsigned,
            "APPROVAL_SIGNATURE_INVALID": msgspec.structs.replace(
                unsigned, issued_at=issued_at, signature=sign(payload, keys["mallory"].private)
            ),
            "APPROVAL_INVALID": msgspec.structs.replace(unsigned, issued_at=issued_at),
        }
        for code, command in attempts.items():
            reply = await daemon.handle(command, bob)
            assert isinstance(reply, Error), (code, reply)
            assert reply.code == code, (code, reply)
            assert await rig.run_store.consumed_for(sc.run_id) == []
            assert isinstance(await daemon.handle(Ping(), bob), Pong)
        # Malformed signature bytes are refused before anything is stored.
        stored_before = await rig.kb.list("approvals")
        garbled = msgspec.structs.replace(unsigned, issued_at=issued_at, signature="garbage")
        reply = await daemon.handle(garbled, bob)
        assert isinstance(reply, Error)
        assert reply.code == "APPROVAL_SIGNATURE_INVALID"
        assert await rig.kb.list("approvals") == stored_before
        signed = msgspec.structs.replace(unsigned, issued_at=issued_at, signature=signature)
        reply = await daemon.handle(signed, bob)
        assert isinstance(reply, ApprovalStored), reply
        assert reply.run.state is not RunState.AWAITING_CUT_AUTHORIZATION
        stored = await rig.kb.get(reply.approval_kb_id)
        assert isinstance(stored, Approval)
        assert (stored.signature, stored.issued_at, stored.principal) == (
            signature,
            issued_at,
            REVIEWER,
        )
        jobs.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_relay_forwards_a_reviewers_signature_but_cannot_mint_one(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    rig = build_runner(tmp_path)
    await set_policy(rig, policy_text(keys["bob"]).replace('admins = ["root"]', RELAY_POLICY))
    relay = Caller("review-bot", "unix uid=1002")
    async with rig.runner, anyio.create_task_group() as jobs:
        daemon = Daemon(rig.runner, rig.kill_switch, EventBus(), jobs, owner="root")
        sc = await rig.runner.cut(DOC_ID, started_by=OPERATOR)
        gate = sc.pending_gate
        assert gate is not None
        issued_at = rig.clock()
        fields = {
            "run_id": sc.run_id,
            "gate": Gate.SG_1,
            "request_digest": gate.request_digest,
            "nonce": gate.nonce,
            "decision": Decision.APPROVE,
            "approver": REVIEWER,
        }
        payload = approval_payload(**{**fields, "decision": "approve", "issued_at": issued_at})  # type: ignore[arg-type]
        unsigned = SubmitApproval(**fields, reason="forwarded from the review tool")  # type: ignore[arg-type]
        # The relay's own key is no reviewer's: signing bob's decision with it fails.
        minted = msgspec.structs.replace(
            unsigned, issued_at=issued_at, signature=sign(payload, keys["mallory"].private)
        )
        for command, code in (
            (unsigned, "APPROVAL_SIGNATURE_REQUIRED"),
            (minted, "APPROVAL_SIGNATURE_INVALID"),
        ):
            reply = await daemon.handle(command, relay)
            assert isinstance(reply, Error)
            assert reply.code == code
            assert await rig.run_store.consumed_for(sc.run_id) == []
        forwarded = msgspec.structs.replace(
            unsigned, issued_at=issued_at, signature=sign(payload, keys["bob"].private)
        )
        reply = await daemon.handle(forwarded, relay)
        assert isinstance(reply, ApprovalStored), reply
        [use] = (await rig.run_store.load(sc.run_id)).gate(Gate.SG_1).uses  # type: ignore[union-attr]
        assert (use.approver, use.relayed_by, use.proof) == (REVIEWER, "review-bot", "signature")
        jobs.cancel_scope.cancel()


RELAY_POLICY = 'admins = ["root"]\nrelays = ["review-bot"]'
