"""``cutter approve --sign-with KEY`` against the real daemon: a gate the policy opens
to signatures only is passed by the reviewer's signed decision, and refuses an
unsigned one and one signed with a key the policy does not list; the daemon keeps
serving after each refusal, and nothing is consumed by one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutter.cli.remote import login_name
from cutter.core.protocol import RunInfo
from cutter.core.states import RunState
from tests.daemon.conftest import DaemonProcess
from tests.daemon.test_cli import (
    cli,
    expect,
    frame,
    ok,
    refused,
    start,
    start_with_sample,
)

pytestmark = pytest.mark.subprocess

REVIEWER = "bob"
TIMEOUT = 60


def make_key(where: Path, name: str) -> Path:
    path = where / name
    command = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=TIMEOUT)
    return path


@pytest.fixture
def daemon(tmp_path: Path, daemons: list[DaemonProcess]) -> Iterator[DaemonProcess]:
    process = start_with_sample(tmp_path, daemons)
    yield process
    assert process.stop() == 0


def test_a_signature_only_gate_is_passed_by_the_reviewers_signed_decision(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    socket = daemon.socket
    bob, mallory = make_key(tmp_path, "bob"), make_key(tmp_path, "mallory")
    me = login_name()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"""
admins = ["{me}"]
relays = ["{me}"]
[reviewer_keys]
{REVIEWER} = ["{bob.with_suffix(".pub").read_text().strip()}"]
[sg_1]
approvers = ["{REVIEWER}"]
proofs = ["signature"]
"""
    )
    assert "reviewer_keys" in ok(socket, "policy", "set", "--file", str(policy)).stdout
    run = start(socket)
    assert run.state is RunState.AWAITING_CUT_AUTHORIZATION
    sg1 = ["approve", run.run_id, "--gate", "SG_1", "--approver", REVIEWER, "--reason", "ok"]

    unsigned = cli(socket, *sg1)
    assert "accepts only a reviewer's signature" in refused(unsigned, "APPROVAL_SIGNATURE_REQUIRED")
    wrong_key = cli(socket, *sg1, "--sign-with", str(mallory))
    assert "no policy key of bob" in refused(wrong_key, "APPROVAL_SIGNATURE_INVALID")
    no_key = cli(socket, *sg1, "--sign-with", str(tmp_path / "missing"))
    assert "was not sent" in refused(no_key, "E_SIGNING_FAILED")
    # The daemon still serves, and the run still waits with nothing consumed.
    waiting = expect(frame(ok(socket, "status", run.run_id, "--json")), RunInfo).run
    assert waiting.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert waiting.waiting is not None
    assert waiting.waiting.approvals == 0

    signed = ok(socket, *sg1, "--sign-with", str(bob))
    assert f"{REVIEWER} approved: stored as approvals/{run.run_id}/SG_1-" in signed.stdout
    after = expect(frame(ok(socket, "status", run.run_id, "--json")), RunInfo).run
    assert after.state is not RunState.AWAITING_CUT_AUTHORIZATION
    [consumed] = daemon.named("approval_consumed")
    assert (consumed["proof"], consumed["approver"]) == ("signature", REVIEWER)
    assert str(consumed["signer_key"]).startswith("ED25519 SHA256:")
