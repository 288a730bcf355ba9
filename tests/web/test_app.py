"""The review page in-process: httpx drives the Starlette app over a real Daemon on
the test harness's stores, with the harness's clock (expiry without waiting).

Every refusal is a typed page with its HTTP status, stores nothing, consumes
nothing, leaves the link as it was, and the next request is served."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
import structlog.testing

import cutter.core.mode
from cutter.core.errors import StopGateNotPassed
from cutter.core.kbdocs import Approval, Decision
from cutter.core.mode import Mode
from cutter.core.principals import Caller
from cutter.core.protocol import Error, MintLink, ReviewLink, SubmitApproval
from cutter.core.route import Gate
from cutter.core.states import RunState
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.walk.gate_check import PolicyGateVerifier
from cutter.web.app import MAX_FORM_BYTES, review_app
from cutter.web.links import DEFAULT_TTL
from tests._harness import DOC_ID, OPERATOR, REVIEWER, REVIEWER_2, Rig, build_runner
from tests.test_signed_approvals import set_policy

pytestmark = pytest.mark.anyio

WEB_POLICY = f"""
admins = ["root"]
[sg_1]
approvers = ["{REVIEWER}", "{REVIEWER_2}"]
proofs = ["peer", "web"]
[sg_2]
approvers = ["{REVIEWER}", "{REVIEWER_2}"]
proofs = ["peer", "web"]
"""
BASE = "http://127.0.0.1:8421"
BOB = Caller(REVIEWER, "unix uid=1001")
CY = Caller(REVIEWER_2, "unix uid=1002")


@dataclass
class Page:
    rig: Rig
    daemon: Daemon
    http: httpx.AsyncClient
    run_id: str

    async def mint(self, caller: Caller = BOB, **fields: object) -> str:
        reply = await self.daemon.handle(MintLink(run_id=self.run_id, **fields), caller)  # type: ignore[arg-type]
        assert isinstance(reply, ReviewLink), reply
        assert reply.url.startswith(f"{BASE}/runs/{self.run_id}/link/")
        return reply.url.removeprefix(BASE)

    async def csrf(self, path: str) -> str:
        page = await self.http.get(path)
        assert page.status_code == 200, page.text
        [token] = set(re.findall(r'name="csrf" value="([0-9a-f]{64})"', page.text))
        return token

    async def unchanged(self) -> None:
        """Nothing stored, nothing consumed: the run still waits at SG_1, undecided."""
        sidecar = await self.rig.run_store.load(self.run_id)
        assert sidecar.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert sidecar.gate(Gate.SG_1).uses == ()  # type: ignore[union-attr]
        assert await self.rig.run_store.consumed_for(self.run_id) == []
        assert await self.rig.kb.list("approvals") == []
        assert (await self.http.get("/")).status_code == 200  # still serving


@asynccontextmanager
async def page(
    tmp_path: Path, policy: str = WEB_POLICY, mode: Mode = Mode.DRY_RUN
) -> AsyncIterator[Page]:
    rig = build_runner(tmp_path)
    await set_policy(rig, policy)
    async with rig.runner, anyio.create_task_group() as jobs:
        daemon = Daemon(rig.runner, rig.kill_switch, EventBus(), jobs, owner="root")
        daemon.web_url = BASE
        sidecar = await rig.runner.cut(DOC_ID, mode, started_by=OPERATOR)
        transport = httpx.ASGITransport(app=review_app(daemon))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield Page(rig, daemon, http, sidecar.run_id)
        jobs.cancel_scope.cancel()


def refusal(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert f'<code class="code">{code}</code>' in response.text, response.text
    assert "Traceback" not in response.text


async def test_a_minted_link_decides_once_as_its_principal_through_the_gatekeeper(
    tmp_path: Path,
) -> None:
    async with page(tmp_path) as p:
        path = await p.mint()
        csrf = await p.csrf(path)
        decided = await p.http.post(
            path, data={"csrf": csrf, "decision": "approve", "reason": "units read"}
        )
        assert decided.status_code == 200, decided.text
        sidecar = await p.rig.run_store.load(p.run_id)
        assert sidecar.state is not RunState.AWAITING_CUT_AUTHORIZATION
        [use] = sidecar.gate(Gate.SG_1).uses  # type: ignore[union-attr]
        assert (use.approver, use.principal, use.proof) == (REVIEWER, REVIEWER, "web")
        assert await p.rig.run_store.consumed_by(use.approval_kb_id) == p.run_id
        stored = await p.rig.kb.get(use.approval_kb_id)
        assert isinstance(stored, Approval)
        assert (stored.via, stored.reason, stored.decision) == (
            "web",
            "units read",
            Decision.APPROVE,
        )
        # Checked again where the write happens: the page's proof passes only while
        # the policy takes it.
        verifier = PolicyGateVerifier(
            kb=p.rig.kb, consumption=p.rig.run_store, fallback=p.daemon.fallback_policy
        )
        await verifier.verify(sidecar, Gate.SG_1)
        await set_policy(p.rig, WEB_POLICY.replace('"peer", "web"', '"peer"'))
        with pytest.raises(StopGateNotPassed, match="review page"):
            await verifier.verify(sidecar, Gate.SG_1)
        await set_policy(p.rig, WEB_POLICY)
        # Spent: the page and the post both refuse it now, and nothing moves.
        before = await p.rig.run_store.load(p.run_id)
        again = await p.http.post(path, data={"csrf": csrf, "decision": "approve"})
        refusal(again, 410, "E_LINK_USED")
        refusal(await p.http.get(path), 410, "E_LINK_USED")
        assert await p.rig.run_store.load(p.run_id) == before


async def test_forged_truncated_other_run_csrf_and_size_refusals_change_nothing(
    tmp_path: Path,
) -> None:
    async with page(tmp_path) as p:
        path = await p.mint()
        csrf = await p.csrf(path)
        token = path.rsplit("/", 1)[1]
        other_run = path.replace(p.run_id, "run-0123456789abcdef")
        forged = path.replace(token, "A" * len(token))
        attempts: list[tuple[str, dict[str, str] | bytes, dict[str, str], int, str]] = [
            (forged, {"csrf": csrf, "decision": "approve"}, {}, 404, "E_LINK_INVALID"),
            (path[:-1], {"csrf": csrf, "decision": "approve"}, {}, 404, "E_LINK_INVALID"),
            (other_run, {"csrf": csrf, "decision": "approve"}, {}, 403, "E_LINK_WRONG_RUN"),
            (path, {"decision": "approve"}, {}, 403, "E_CSRF_INVALID"),
            (path, {"csrf": "0" * 64, "decision": "approve"}, {}, 403, "E_CSRF_INVALID"),
            (path, {"csrf": csrf, "decision": "approve!"}, {}, 400, "E_FORM_INVALID"),
            (
                path,
                {"csrf": csrf, "decision": "approve", "review_decision_id": "a b"},
                {},
                400,
                "E_FORM_INVALID",
            ),
            (
                path,
                {"csrf": csrf, "decision": "approve", "pad": "x" * MAX_FORM_BYTES},
                {},
                413,
                "E_FORM_TOO_LARGE",
            ),
            (
                path,
                b'{"decision": "approve"}',
                {"content-type": "application/json"},
                400,
                "E_FORM_INVALID",
            ),
        ]
        for where, body, headers, status, code in attempts:
            if isinstance(body, bytes):
                response = await p.http.post(where, content=body, headers=headers)
            else:
                response = await p.http.post(where, data=body)
            refusal(response, status, code)
            await p.unchanged()
        refusal(await p.http.get(forged), 404, "E_LINK_INVALID")
        refusal(await p.http.get(other_run), 403, "E_LINK_WRONG_RUN")

        # A body larger than the cap with no Content-Length (chunked) is cut off too.
        async def chunks() -> AsyncIterator[bytes]:
            yield f"csrf={csrf}&decision=approve&pad=".encode()
            for _ in range(4):
                yield b"x" * MAX_FORM_BYTES

        chunked = await p.http.post(
            path,
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert "content-length" not in chunked.request.headers
        refusal(chunked, 413, "E_FORM_TOO_LARGE")
        await p.unchanged()
        # None of that spent the link: it still decides, once.
        decided = await p.http.post(path, data={"csrf": csrf, "decision": "reject"})
        assert decided.status_code == 200, decided.text
        sidecar = await p.rig.run_store.load(p.run_id)
        assert sidecar.stop_code == "STOP_APPROVAL_REJECTED"


async def test_a_link_expires_on_the_daemons_clock_and_a_zero_ttl_is_born_expired(
    tmp_path: Path,
) -> None:
    async with page(tmp_path) as p:
        path = await p.mint()
        csrf = await p.csrf(path)
        p.rig.clock.advance(DEFAULT_TTL)
        refusal(await p.http.get(path), 410, "E_LINK_EXPIRED")
        refusal(
            await p.http.post(path, data={"csrf": csrf, "decision": "approve"}),
            410,
            "E_LINK_EXPIRED",
        )
        await p.unchanged()
        short = await p.mint(ttl_seconds=0)
        refusal(await p.http.get(short), 410, "E_LINK_EXPIRED")
        # A ttl asked for may shorten the daemon's, never lengthen it.
        long = await p.daemon.handle(MintLink(run_id=p.run_id, ttl_seconds=10**6), BOB)
        assert isinstance(long, ReviewLink)
        assert long.expires_at - p.rig.clock.now <= DEFAULT_TTL
        await p.unchanged()


async def test_a_link_whose_request_moved_on_is_refused_never_re_aimed(tmp_path: Path) -> None:
    async with page(tmp_path) as p:
        path = await p.mint(CY)
        csrf = await p.csrf(path)
        # bob approves SG_1 over the socket: the run moves on to SG_2.
        gate = (await p.rig.run_store.load(p.run_id)).pending_gate
        assert gate is not None
        approval = SubmitApproval(
            run_id=p.run_id,
            gate=Gate.SG_1,
            request_digest=gate.request_digest,
            nonce=gate.nonce,
            decision=Decision.APPROVE,
            approver=REVIEWER,
            reason="over the socket",
        )
        await p.daemon.handle(approval, BOB)
        moved = await p.rig.run_store.load(p.run_id)
        assert moved.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        refusal(await p.http.get(path), 409, "E_LINK_STALE")
        refusal(
            await p.http.post(path, data={"csrf": csrf, "decision": "approve"}), 409, "E_LINK_STALE"
        )
        assert await p.rig.run_store.load(p.run_id) == moved
        assert len(await p.rig.kb.list("approvals")) == 1
        # At SG_2 the page asks for the review decision; a post without one spends nothing.
        sg2 = await p.mint(CY)
        csrf = await p.csrf(sg2)
        bare = await p.http.post(sg2, data={"csrf": csrf, "decision": "approve"})
        refusal(bare, 400, "E_FORM_INVALID")
        assert await p.rig.run_store.load(p.run_id) == moved
        decided = await p.http.post(
            sg2, data={"csrf": csrf, "decision": "approve", "review_decision_id": "review-42"}
        )
        assert decided.status_code == 200, decided.text
        done = await p.rig.run_store.load(p.run_id)
        assert done.state is RunState.CLOSEOUT_REPORTED
        [use] = done.gate(Gate.SG_2).uses  # type: ignore[union-attr]
        assert (use.approver, use.proof, use.review_decision_id) == (REVIEWER_2, "web", "review-42")


async def test_the_policy_in_force_at_the_post_decides_not_the_one_at_minting(
    tmp_path: Path,
) -> None:
    async with page(tmp_path) as p:
        path = await p.mint()
        csrf = await p.csrf(path)
        await set_policy(p.rig, WEB_POLICY.replace('proofs = ["peer", "web"]', 'proofs = ["peer"]'))
        refused = await p.http.post(path, data={"csrf": csrf, "decision": "approve"})
        refusal(refused, 409, "APPROVAL_SIGNATURE_REQUIRED")
        sidecar = await p.rig.run_store.load(p.run_id)
        assert sidecar.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert await p.rig.run_store.consumed_for(p.run_id) == []


async def test_minting_is_refused_where_the_gatekeeper_would_refuse_the_decision(
    tmp_path: Path,
) -> None:
    peer_only = WEB_POLICY.replace('proofs = ["peer", "web"]', 'proofs = ["peer"]', 1).replace(
        f'"{REVIEWER_2}"]', f'"{REVIEWER_2}", "{OPERATOR}"]', 1
    )
    async with page(tmp_path, peer_only) as p:
        cases = {
            "E_WEB_PROOF_NOT_ACCEPTED": BOB,
            "APPROVAL_NOT_ALLOWED": Caller("mallory", "unix uid=1003"),
            "APPROVAL_SELF": Caller(OPERATOR, "unix uid=1000"),
            "E_PRINCIPAL_UNKNOWN": Caller(None, "unix peer without credentials"),
        }
        for code, caller in cases.items():
            reply = await p.daemon.handle(MintLink(run_id=p.run_id), caller)
            assert isinstance(reply, Error), (code, reply)
            assert reply.code == code, (code, reply)
        p.daemon.web_url = None
        reply = await p.daemon.handle(MintLink(run_id=p.run_id), BOB)
        assert isinstance(reply, Error)
        assert reply.code == "E_HTTP_NOT_SERVING"
        await p.unchanged()


async def test_the_inbox_and_the_review_page_show_the_gate_and_every_unit(tmp_path: Path) -> None:
    async with page(tmp_path) as p:
        inbox = await p.http.get("/")
        assert inbox.status_code == 200
        assert f'<a href="/runs/{p.run_id}">{p.run_id}</a>' in inbox.text
        assert "0 of 1" in inbox.text
        assert f"{REVIEWER}, {REVIEWER_2}" in inbox.text  # who may still approve
        review = await p.http.get(f"/runs/{p.run_id}")
        assert review.status_code == 200
        _, gate_review = await p.rig.runner.review(p.run_id)
        for unit in gate_review.units:
            assert f'id="u-{unit.ordinal}"' in review.text
            assert f"bytes {unit.start}\u2013{unit.end}" in review.text
        assert "A first cut: every unit below is added." in review.text
        assert '<li class="added">' not in review.text  # not listed a second time
        assert 'name="csrf"' not in review.text  # read-only without a link
        assert review.headers["content-security-policy"].startswith("default-src 'none'")
        assert review.headers["referrer-policy"] == "no-referrer"
        refusal(await p.http.get("/runs/run-0123456789abcdef"), 404, "E_UNKNOWN_RUN")
        refusal(await p.http.get("/runs/..%2Fetc"), 404, "E_NOT_FOUND")
        refusal(await p.http.get("/nothing-here"), 404, "E_NOT_FOUND")
        # A page fetched under another host name (DNS rebinding) is refused.
        rebound = await p.http.get("/", headers={"host": "evil.example"})
        assert rebound.status_code == 400


async def test_a_corrupt_run_is_a_typed_page_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    async with page(tmp_path) as p:
        path = await p.mint()
        good = p.rig.stored_sidecar(p.run_id)
        p.rig.overwrite_sidecar(p.run_id, good[: len(good) // 2])
        for where in (f"/runs/{p.run_id}", path):
            refusal(await p.http.get(where), 400, "E_CORRUPT_RECORD")
        # The inbox serves, the run listed apart as unreadable with the reason (issue 12).
        inbox = await p.http.get("/")
        assert inbox.status_code == 200, inbox.text
        assert f"<tr><td>{p.run_id}</td><td>E_CORRUPT_RECORD</td>" in inbox.text
        assert f'<a href="/runs/{p.run_id}">' not in inbox.text
        p.rig.overwrite_sidecar(p.run_id, good)
        assert (await p.http.get(path)).status_code == 200


LIVE_SIGNED = WEB_POLICY.replace(
    'proofs = ["peer", "web"]', 'proofs = ["peer", "web"]\nlive_proofs = ["peer"]'
)


async def test_live_proofs_let_a_policy_take_the_page_for_dry_runs_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cutter.core.mode, "__execution_enabled__", True)
    async with page(tmp_path / "dry", LIVE_SIGNED) as dry:
        await dry.mint()  # a dry run's gate takes the page
    async with page(tmp_path / "live", LIVE_SIGNED, Mode.LIVE) as live:
        reply = await live.daemon.handle(MintLink(run_id=live.run_id), BOB)
        assert isinstance(reply, Error)
        assert reply.code == "E_WEB_PROOF_NOT_ACCEPTED"
        assert "LIVE" in reply.message
        await live.unchanged()
    async with page(tmp_path / "later", WEB_POLICY, Mode.LIVE) as later:
        # Minted while the policy took the page for live runs; stricter at the post.
        path = await later.mint()
        csrf = await later.csrf(path)
        await set_policy(later.rig, LIVE_SIGNED)
        refused = await later.http.post(path, data={"csrf": csrf, "decision": "approve"})
        refusal(refused, 409, "APPROVAL_SIGNATURE_REQUIRED")
        sidecar = await later.rig.run_store.load(later.run_id)
        assert sidecar.state is RunState.AWAITING_CUT_AUTHORIZATION
        assert await later.rig.run_store.consumed_for(later.run_id) == []
    async with page(tmp_path / "written", WEB_POLICY, Mode.LIVE) as written:
        # Checked again where the write happens, with the proofs for the run's mode.
        path = await written.mint()
        csrf = await written.csrf(path)
        decided = await written.http.post(path, data={"csrf": csrf, "decision": "approve"})
        assert decided.status_code == 200, decided.text
        sidecar = await written.rig.run_store.load(written.run_id)
        assert sidecar.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
        verifier = PolicyGateVerifier(
            kb=written.rig.kb,
            consumption=written.rig.run_store,
            fallback=written.daemon.fallback_policy,
        )
        await verifier.verify(sidecar, Gate.SG_1)
        await set_policy(written.rig, LIVE_SIGNED)
        with pytest.raises(StopGateNotPassed, match="review page"):
            await verifier.verify(sidecar, Gate.SG_1)


async def test_a_links_token_never_reaches_the_log(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logged:
        async with page(tmp_path) as p:
            path = await p.mint()
            token = path.rsplit("/", 1)[1]
            refusal(await p.http.post(path, data={"decision": "approve"}), 403, "E_CSRF_INVALID")
            refusal(
                await p.http.get(path.replace(p.run_id, "run-0123456789abcdef")),
                403,
                "E_LINK_WRONG_RUN",
            )
            csrf = await p.csrf(path)
            assert (await p.http.post(path, data={"csrf": csrf, "decision": "approve"})).is_success
    assert {"web_refused", "web_decision", "review_link_minted"} <= {e["event"] for e in logged}
    assert token not in repr(logged)
