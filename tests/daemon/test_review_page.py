"""The review page in a real browser: Debian's chromium, driven by playwright,
against a real daemon subprocess serving ``--http 127.0.0.1:0``.

The inbox lists a waiting gate; the review page shows the units; approving through
a minted link advances the run exactly as ``cutter approve`` does; the same link
again, an expired link and a link for another run are refused; a document whose
heading is ``<script>alert(1)</script>`` renders as text. The chromium is the
system's (``.ci/run`` installs it): playwright cannot download its own here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, sync_playwright

from cutter.core.protocol import ReviewLink, RunInfo, decode_reply
from cutter.core.route import Gate
from cutter.core.states import RunState
from tests.daemon.conftest import ROOT, DaemonProcess, start_daemon
from tests.inputs import input_file

pytestmark = pytest.mark.subprocess

CHROMIUM = Path(os.environ.get("CUTTER_CHROMIUM", "/usr/bin/chromium"))
SAMPLE = ROOT / "cutter" / "samples" / "garden-charter.md"
SCRIPT = "<script>alert(1)</script>"
HOSTILE = f"""# {SCRIPT}

A charter whose title is markup, to show that the page prints it as text.

Article 1. {SCRIPT}

The first article's heading is a script element; it must read as text.

Article 2. Members

Anyone who tends a plot is a member.
""".encode()
POLICY = """
admins = ["root"]
relays = ["root"]
[sg_1]
proofs = ["peer", "web"]
[sg_2]
proofs = ["peer", "web"]
"""
TIMEOUT = 60


def cutter(*args: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "cutter", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PATH": path},
        cwd=ROOT,
        timeout=TIMEOUT,
        check=False,
    )


def ok(*args: str) -> str:
    done = cutter(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def url_of(daemon: DaemonProcess) -> str:
    [started] = daemon.named("daemon_started")
    url = started["http"]
    assert isinstance(url, str)
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith(":0")
    return url


def mint(socket: Path, run_id: str, *args: str) -> ReviewLink:
    reply = decode_reply(
        ok("review", run_id, "--web", "--json", "--socket", str(socket), *args).encode()
    )
    assert isinstance(reply, ReviewLink), reply
    return reply


def status(socket: Path, run_id: str) -> RunInfo:
    reply = decode_reply(ok("status", run_id, "--json", "--socket", str(socket)).encode())
    assert isinstance(reply, RunInfo), reply
    return reply


@pytest.fixture
def browser_page() -> Iterator[Page]:
    executable = input_file(CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


@pytest.fixture
def served(tmp_path: Path, daemons: list[DaemonProcess]) -> Iterator[DaemonProcess]:
    state = tmp_path / "state"
    hostile = tmp_path / "hostile.md"
    hostile.write_bytes(HOSTILE)
    ok("add-document", "--state-dir", str(state), "doc-1", str(SAMPLE))
    ok("add-document", "--state-dir", str(state), "doc-2", str(hostile))
    process = start_daemon(state, "--http", "127.0.0.1:0")
    daemons.append(process)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    ok("policy", "set", "--file", str(policy), "--socket", str(process.socket))
    yield process
    assert process.stop() == 0


def start(socket: Path, doc_id: str) -> str:
    reply = decode_reply(
        ok("start", doc_id, "--by", "ann", "--json", "--socket", str(socket)).encode()
    )
    assert isinstance(reply, RunInfo), reply
    assert reply.run.state is RunState.AWAITING_CUT_AUTHORIZATION
    return reply.run.run_id


def refused(page: Page, url: str, status_code: int, code: str) -> None:
    response = page.goto(url)
    assert response is not None
    assert response.status == status_code
    assert page.locator("code.code").inner_text() == code


def test_deciding_on_the_review_page_in_chromium(
    served: DaemonProcess, browser_page: Page, tmp_path: Path
) -> None:
    page, socket, base = browser_page, served.socket, url_of(served)
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    charter, hostile = start(socket, "doc-1"), start(socket, "doc-2")

    # The inbox lists both waiting gates.
    page.goto(f"{base}/")
    for run_id in (charter, hostile):
        row = page.locator("tr", has=page.locator(f"a[href='/runs/{run_id}']"))
        assert "SG_1" in row.inner_text()
        assert "0 of 1" in row.inner_text()

    page.screenshot(path=str(tmp_path / "inbox.png"))
    # The review page shows every unit, in the table and in the source text.
    review = json.loads(ok("review", charter, "--json", "--socket", str(socket)))["review"]
    page.goto(f"{base}/runs/{charter}")
    assert page.locator("section.unit").count() == len(review["units"])
    for unit in review["units"]:
        label = page.locator(f"#u-{unit['ordinal']} .unit-label").inner_text()
        assert f"bytes {unit['start']}\u2013{unit['end']}" in label
    assert page.locator("form").count() == 0  # read-only without a link

    # Approving through a minted link advances the run as `cutter approve` would.
    link = mint(socket, charter)
    assert (link.gate, link.principal) == (Gate.SG_1, "root")
    page.goto(link.url)
    page.screenshot(path=str(tmp_path / "review-page.png"), full_page=True)
    page.fill("form.approve input[name=reason]", "read every unit on the page")
    page.click("#approve")
    assert page.locator("h1").inner_text() == "Decision recorded"
    run = status(socket, charter).run
    assert run.state is RunState.AWAITING_LIFECYCLE_AUTHORIZATION
    assert run.waiting is not None
    assert run.waiting.gate is Gate.SG_2

    # The same link again, an expired link, a link for another run: refused.
    refused(page, link.url, 410, "E_LINK_USED")
    expired = mint(socket, charter, "--ttl-seconds", "0")
    refused(page, expired.url, 410, "E_LINK_EXPIRED")
    other = mint(socket, hostile)
    token = other.url.rsplit("/", 1)[1]
    refused(page, f"{base}/runs/{charter}/link/{token}", 403, "E_LINK_WRONG_RUN")
    assert status(socket, charter).run == run  # nothing moved

    # Markup in the document is text: visible literally, never run.
    page.goto(other.url)
    assert page.get_by_text(SCRIPT, exact=False).first.is_visible()
    assert SCRIPT in page.locator("section.unit").first.inner_text()
    page.goto(f"{base}/runs/{hostile}")
    page.screenshot(path=str(tmp_path / "hostile-page.png"), full_page=True)
    assert page.get_by_text(f"Article 1. {SCRIPT}").first.is_visible()
    assert dialogs == []
    assert status(socket, hostile).run.state is RunState.AWAITING_CUT_AUTHORIZATION


@pytest.mark.parametrize(
    ("address", "exit_code", "code"),
    [("0.0.0.0:0", 1, "E_HTTP_ADDRESS_REFUSED"), ("127.0.0.1:nope", 1, "E_HTTP_ADDRESS_REFUSED")],
)
def test_a_non_loopback_address_is_refused_in_one_line(
    tmp_path: Path, address: str, exit_code: int, code: str
) -> None:
    done = cutter("daemon", "--state-dir", str(tmp_path / "s"), "--http", address)
    assert done.returncode == exit_code, done.stderr
    assert done.stderr.startswith(f"Error: {code}: ") or done.stderr.startswith(f"{code}: ")
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "s" / "daemon.sock").exists()


def test_a_busy_port_is_refused_with_exit_3_and_the_holder_keeps_serving(
    served: DaemonProcess, tmp_path: Path
) -> None:
    port = url_of(served).rsplit(":", 1)[1]
    done = cutter("daemon", "--state-dir", str(tmp_path / "s2"), "--http", f"127.0.0.1:{port}")
    assert done.returncode == 3, done.stderr
    assert "E_HTTP_PORT_BUSY: " in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert served.process.poll() is None
