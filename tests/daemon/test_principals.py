"""Authenticated principals and the policy, with real OS users against the real daemon.

The harness creates the users (``useradd``; the machines and CI run as root) and a
group the daemon opens its socket to (``--socket-group``). Each client runs as one
of those uids in a subprocess: a stdlib-only client under the system Python (the
test's own interpreter may sit where those users cannot read), so the daemon sees
that uid from the kernel, exactly as it would see a reviewer's ``cutter approve``.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from cutter.core.kbdocs import Approval, PolicyVersion, policy_change_id
from cutter.core.mode import Mode
from cutter.core.principals import own_principal
from cutter.core.protocol import (
    AbortRun,
    AnyCommand,
    AnyReply,
    ApprovalStored,
    Error,
    Ping,
    PolicyInfo,
    Pong,
    RunInfo,
    RunSummary,
    SetPolicy,
    ShowPolicy,
    Shutdown,
    Start,
    decode_reply,
    encode,
)
from cutter.core.route import Gate
from cutter.core.states import RunState
from tests.daemon._db import kb_get, kb_list, query, read
from tests.daemon._drive import (
    DOC_ID,
    START_TIMEOUT,
    StdioDaemon,
    WatchedDaemon,
    add_document,
    approval_for,
    ask,
    launch,
    status,
)

GROUP = "cp11-cutter"
ANN, BOB, CAROL, RELAY, EVE = "cp11-ann", "cp11-bob", "cp11-carol", "cp11-relay", "cp11-eve"
# A login name useradd accepts (a machine account's) but outside the principal alphabet.
HOSTILE = "cp11-mach$"
USERS = (ANN, BOB, CAROL, RELAY, EVE, HOSTILE)
SYSTEM_PYTHON = "/usr/bin/python3"

# A client that needs nothing but the standard library: one frame out, one reply back.
CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\\n")
data = b""
while not data.endswith(b"\\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"""

pytestmark = [pytest.mark.may_skip, pytest.mark.subprocess]


def _policy(admin: str, *, sg_1_required: int = 2) -> str:
    return f"""
admins = ["{admin}"]
relays = ["{RELAY}"]
starters = ["{ANN}"]

[sg_1]
approvers = ["{ANN}", "{BOB}", "{CAROL}"]
required_approvals = {sg_1_required}

[sg_2]
approvers = ["{BOB}", "{CAROL}"]
"""


@pytest.fixture(scope="module")
def users() -> Iterator[None]:
    """The test users and their group, made here and removed afterwards."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("creating OS users needs root and useradd")
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"no {SYSTEM_PYTHON} for the other users' clients")
    made: list[list[str]] = []
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", GROUP], check=True)
        made.append(["groupdel", GROUP])
    for name in USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--no-create-home", "--gid", GROUP, "--shell", "/bin/false", name],
                check=True,
            )
            made.insert(0, ["userdel", name])
    yield
    for command in made:
        subprocess.run(command, check=False)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A state directory's parent other users may traverse (pytest's tmp is root's)."""
    base = Path(tempfile.mkdtemp(prefix="cutter-principals-", dir="/tmp"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon(users: None, shared: Path) -> Iterator[WatchedDaemon]:
    state = shared / "state"
    add_document(state_dir=state)
    process = launch(state, "--socket-group", GROUP)
    yield process
    process.kill()


def as_user(daemon: WatchedDaemon, user: str, command: AnyCommand) -> AnyReply:
    """Send ``command`` from a process running as ``user`` (and only its own group)."""
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", CLIENT, str(daemon.socket), encode(command).decode().strip()],
        user=user,
        group=GROUP,
        extra_groups=[],
        capture_output=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return decode_reply(done.stdout)


def set_policy(daemon: WatchedDaemon, text: str) -> PolicyInfo:
    reply = anyio.run(ask, daemon.socket, SetPolicy(text=text))
    assert isinstance(reply, PolicyInfo), reply
    return reply


def refused(reply: AnyReply, code: str) -> None:
    assert isinstance(reply, Error), reply
    assert reply.code == code, reply


def start_as(daemon: WatchedDaemon, user: str, started_by: str | None = None) -> AnyReply:
    command = Start(doc_id=DOC_ID, started_by=started_by or user, mode=Mode.DRY_RUN)
    return as_user(daemon, user, command)


def started(daemon: WatchedDaemon) -> RunSummary:
    reply = start_as(daemon, ANN)
    assert isinstance(reply, RunInfo), reply
    assert reply.run.waiting is not None
    assert reply.run.waiting.gate is Gate.SG_1
    return reply.run


def decide(daemon: WatchedDaemon, user: str, run: RunSummary, approver: str | None = None) -> Any:
    return as_user(daemon, user, approval_for(run, approver=user if approver is None else approver))


def sidecar(daemon: WatchedDaemon, run_id: str) -> Any:
    return read(daemon.state_dir, lambda c: c.run_store.load(run_id))


def approvals_stored(daemon: WatchedDaemon, run_id: str) -> list[str]:
    return kb_list(daemon.state_dir, f"approvals/{run_id}")


def test_the_socket_is_the_groups_and_the_stores_stay_private(daemon: WatchedDaemon) -> None:
    gid = grp.getgrnam(GROUP).gr_gid
    state, sock = daemon.state_dir.stat(), daemon.socket.stat()
    assert (state.st_mode & 0o777, state.st_gid) == (0o710, gid)
    assert (sock.st_mode & 0o777, sock.st_gid) == (0o660, gid)
    for entry in daemon.state_dir.iterdir():
        if entry.name != "daemon.sock":
            assert entry.stat().st_mode & 0o077 == 0, entry
    # A group member reaches the socket and is known by its own name, not the daemon's.
    shown = as_user(daemon, EVE, ShowPolicy())
    assert isinstance(shown, PolicyInfo)
    assert shown.principal == EVE
    assert shown.version == 0
    assert shown.policy.admins == (own_principal(),)


def test_the_starter_cannot_approve_under_another_name(daemon: WatchedDaemon) -> None:
    set_policy(daemon, _policy(own_principal()))
    refused(start_as(daemon, ANN, started_by=BOB), "E_PRINCIPAL_MISMATCH")
    run = started(daemon)
    assert sidecar(daemon, run.run_id).started_by_principal == ANN

    refused(decide(daemon, ANN, run, approver=BOB), "E_PRINCIPAL_MISMATCH")
    assert approvals_stored(daemon, run.run_id) == []  # nothing was stored
    refused(decide(daemon, ANN, run), "APPROVAL_SELF")  # her own name: self-approval

    after = anyio.run(status, daemon.socket, run.run_id)
    assert after.state is RunState.AWAITING_CUT_AUTHORIZATION
    assert after.waiting is not None
    assert after.waiting.approvals == 0


def test_an_unlisted_user_is_refused_and_nothing_changes(daemon: WatchedDaemon) -> None:
    set_policy(daemon, _policy(own_principal()))
    refused(start_as(daemon, EVE), "E_NOT_PERMITTED")
    run = started(daemon)
    refused(decide(daemon, EVE, run), "APPROVAL_NOT_ALLOWED")
    assert approvals_stored(daemon, run.run_id) == []
    # Neither the policy nor the daemon is an unlisted user's to change or stop.
    refused(as_user(daemon, EVE, SetPolicy(text=_policy(EVE))), "E_NOT_PERMITTED")
    refused(as_user(daemon, BOB, Shutdown()), "E_NOT_PERMITTED")
    shown = anyio.run(ask, daemon.socket, ShowPolicy())
    assert isinstance(shown, PolicyInfo)
    assert shown.version == 1
    assert shown.policy.admins == (own_principal(),)
    assert daemon.process.poll() is None


def test_only_the_starter_an_approver_or_an_admin_may_abort(daemon: WatchedDaemon) -> None:
    set_policy(daemon, _policy(own_principal()))
    run = started(daemon)
    refused(
        as_user(daemon, EVE, AbortRun(run_id=run.run_id, reason="x", by=EVE)), "E_NOT_PERMITTED"
    )
    after = anyio.run(status, daemon.socket, run.run_id)
    assert after.state is RunState.AWAITING_CUT_AUTHORIZATION  # untouched
    ended = as_user(daemon, CAROL, AbortRun(run_id=run.run_id, reason="not today", by=CAROL))
    assert isinstance(ended, RunInfo), ended
    assert ended.run.state is RunState.ABORTED
    again = started(daemon)  # the document is free again; its starter may end her own run
    mine = as_user(daemon, ANN, AbortRun(run_id=again.run_id, reason="mine", by=ANN))
    assert isinstance(mine, RunInfo), mine
    assert mine.run.state is RunState.ABORTED


def test_n_of_m_counts_principals_and_a_listed_reviewer_is_accepted(
    daemon: WatchedDaemon,
) -> None:
    set_policy(daemon, _policy(own_principal(), sg_1_required=2))
    run = started(daemon)
    first = decide(daemon, BOB, run)
    assert isinstance(first, ApprovalStored)
    assert not first.replayed
    waiting = first.run.waiting
    assert waiting is not None
    assert (waiting.approvals, waiting.required_approvals) == (1, 2)
    # The same principal again counts once (the same decision: replayed), and under
    # another reviewer's name it is refused.
    again = decide(daemon, BOB, run)
    assert isinstance(again, ApprovalStored)
    assert again.replayed
    refused(decide(daemon, BOB, run, approver=CAROL), "E_PRINCIPAL_MISMATCH")
    assert anyio.run(status, daemon.socket, run.run_id).state is RunState.AWAITING_CUT_AUTHORIZATION

    second = decide(daemon, CAROL, run)
    assert isinstance(second, ApprovalStored)
    assert second.run.waiting is not None
    assert second.run.waiting.gate is Gate.SG_2
    uses = sidecar(daemon, run.run_id).gate(Gate.SG_1).uses
    assert [(u.approver, u.principal) for u in uses] == [(BOB, BOB), (CAROL, CAROL)]
    assert all(u.relayed_by is None for u in uses)


def test_a_relay_is_recorded_as_relay_for_whom(daemon: WatchedDaemon) -> None:
    set_policy(daemon, _policy(own_principal(), sg_1_required=1))
    run = started(daemon)
    # A relay may not launder the starter's own approval.
    refused(decide(daemon, RELAY, run, approver=ANN), "APPROVAL_SELF")
    stored = decide(daemon, RELAY, run, approver=CAROL)
    assert isinstance(stored, ApprovalStored), stored
    (use,) = sidecar(daemon, run.run_id).gate(Gate.SG_1).uses
    assert (use.approver, use.principal, use.relayed_by) == (CAROL, RELAY, RELAY)
    doc = kb_get(daemon.state_dir, stored.approval_kb_id)
    assert isinstance(doc, Approval)
    assert (doc.approver, doc.principal) == (CAROL, RELAY)
    # Only a named relay relays: a reviewer cannot forward for another.
    assert stored.run.waiting is not None
    refused(decide(daemon, BOB, stored.run, approver=CAROL), "E_PRINCIPAL_MISMATCH")


HOSTILE_POLICIES = {
    "does not parse": "admins = [",
    "not JSON either": "{",
    "an unknown key": 'admins = ["root"]\nsuperusers = ["x"]',
    "a name with a space": 'admins = ["ann bob"]',
    "a path for a name": 'admins = ["root"]\nstarters = ["../etc"]',
    "bidi control": 'admins = ["root"]\nrelays = ["ann\u202ebob"]',
    "everyone an admin": 'admins = ["*"]',
    "nobody an admin": "admins = []",
    "a relay for everyone": 'admins = ["root"]\nrelays = ["*"]',
    "an unpassable gate": 'admins = ["root"]\n[sg_1]\napprovers = ["a"]\nrequired_approvals = 2',
    "a pattern outside doc_ids": 'admins = ["root"]\n[[documents]]\npattern = "../*"',
    "a number out of range": 'admins = ["root"]\n[sg_2]\nttl_seconds = 0',
    "a wrong type": 'admins = "root"',
}


def test_hostile_policies_and_names_are_refused_and_the_daemon_serves_on(
    daemon: WatchedDaemon,
) -> None:
    first = set_policy(daemon, _policy(own_principal()))
    before = kb_list(daemon.state_dir, "policy")
    for what, text in HOSTILE_POLICIES.items():
        fmt = "json" if text == "{" else "toml"
        reply = anyio.run(ask, daemon.socket, SetPolicy(text=text, format=fmt))
        refused(reply, "E_POLICY_INVALID")
        assert isinstance(reply, Error)
        assert "Traceback" not in reply.message, what
    assert kb_list(daemon.state_dir, "policy") == before
    current = kb_get(daemon.state_dir, "policy/current")
    assert isinstance(current, PolicyVersion)
    assert before == [policy_change_id(current), "policy/current"]
    assert current.version == first.version == 1
    assert current.set_by == own_principal()
    # Hostile declared names from a real user: a typed refusal, nothing stored.
    run = started(daemon)
    for name in (f"{BOB}\n", "../../x", "b" * 300, "bob\u202e", ""):
        reply = decide(daemon, BOB, run, approver=name)
        refused(reply, "E_INVALID_ID")
    assert approvals_stored(daemon, run.run_id) == []
    assert isinstance(as_user(daemon, BOB, ShowPolicy()), PolicyInfo)


def test_a_login_name_outside_the_alphabet_proves_nobody(daemon: WatchedDaemon) -> None:
    assert isinstance(as_user(daemon, HOSTILE, Ping()), Pong)
    refused(as_user(daemon, HOSTILE, ShowPolicy()), "E_PRINCIPAL_UNKNOWN")
    refused(start_as(daemon, HOSTILE, started_by=ANN), "E_PRINCIPAL_UNKNOWN")
    refused(as_user(daemon, HOSTILE, SetPolicy(text=_policy(ANN))), "E_PRINCIPAL_UNKNOWN")
    assert kb_list(daemon.state_dir, "policy") == []
    assert query(daemon.state_dir, "SELECT count(*) FROM runs") == [(0,)]
    assert isinstance(as_user(daemon, EVE, ShowPolicy()), PolicyInfo)  # still serving


def test_policy_cli_sets_shows_and_records_every_change(daemon: WatchedDaemon) -> None:
    policy_file = daemon.state_dir.parent / "policy.toml"
    policy_file.write_text(_policy(own_principal()))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cli = [sys.executable, "-m", "cutter", "policy"]
    where = ["--socket", str(daemon.socket)]
    for _ in range(2):
        done = subprocess.run(
            [*cli, "set", *where, "--file", str(policy_file)], capture_output=True, env=env
        )
        assert done.returncode == 0, done.stderr
    shown = subprocess.run([*cli, "show", *where, "--json"], capture_output=True, env=env)
    assert shown.returncode == 0, shown.stderr
    info = msgspec.json.decode(shown.stdout)
    assert (info["version"], info["set_by"], info["policy"]["relays"]) == (
        2,
        own_principal(),
        [RELAY],
    )
    changes = kb_list(daemon.state_dir, "policy/changes")
    assert [c.rsplit("-", 1)[0] for c in changes] == [
        "policy/changes/000001",
        "policy/changes/000002",
    ]
    bad = daemon.state_dir.parent / "bad.json"
    bad.write_text(json.dumps({"admins": ["root"], "sg_1": {"approvers": 3}}))
    done = subprocess.run([*cli, "set", *where, "--file", str(bad)], capture_output=True, env=env)
    assert done.returncode == 1
    assert done.stderr.decode().startswith("E_POLICY_INVALID: invalid policy: ")
    assert kb_list(daemon.state_dir, "policy/changes") == changes


def test_stdio_acts_as_the_daemons_own_principal(tmp_path: Path) -> None:
    """No users needed: whoever writes the daemon's stdin is the daemon's own uid."""
    stdio = StdioDaemon(tmp_path / "state")
    try:
        shown = stdio.request(ShowPolicy())
        assert isinstance(shown, PolicyInfo)
        assert (shown.principal, shown.policy.admins) == (own_principal(), (own_principal(),))
        # The default policy relays for its own principal: declared names still act.
        started = stdio.request(Start(doc_id="no-such-doc", started_by="operator-ann"))
        assert isinstance(started, RunInfo)
        assert (started.run.started_by, started.run.started_by_principal) == (
            "operator-ann",
            own_principal(),
        )
    finally:
        assert stdio.close() == 0
