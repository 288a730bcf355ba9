"""The one adapter to ``ssh-keygen -Y``: sign a payload with a reviewer's key, verify
a signature against an allowed-signers text. Blocking work (a subprocess) that the
daemon runs in a worker thread, never on the event loop, each call bounded by a
timeout; the payload goes in on stdin, key material in a private temporary dir.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from cutter.core.errors import CutterError, ErrorCode, one_line
from cutter.core.signing import NAMESPACE, check_signature

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
SIGN_TIMEOUT = 60.0  # a key with a passphrase or on a token may ask a person
VERIFY_TIMEOUT = 10.0
_GOOD = re.compile(r"with (\S+) key (SHA256:[A-Za-z0-9+/=]+)")


class SigningFailed(CutterError):
    """``ssh-keygen -Y sign`` did not sign (no such key, a wrong passphrase, no agent)."""

    code = ErrorCode.SIGNING_FAILED


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``ssh-keygen -Y verify`` said: ``key`` (type and fingerprint) when the
    signature is good, else ``why`` it is not."""

    key: str | None
    why: str = ""


def sign(payload: bytes, key_path: Path, *, timeout: float = SIGN_TIMEOUT) -> str:
    """Sign ``payload`` with the private key at ``key_path`` (or the agent's key whose
    public half is at ``key_path``); the armored signature."""
    try:
        done = subprocess.run(
            [SSH_KEYGEN, "-Y", "sign", "-n", NAMESPACE, "-f", str(key_path)],
            input=payload,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SigningFailed(f"ssh-keygen -Y sign could not run: {exc}") from None
    if done.returncode != 0:
        said = one_line(done.stderr.decode(errors="replace"), 200)
        raise SigningFailed(f"ssh-keygen -Y sign with {key_path} failed: {said}")
    return check_signature(done.stdout.decode(errors="replace"))


def verify_blocking(
    payload: bytes,
    signature: str,
    principal: str,
    allowed: str,
    *,
    timeout: float = VERIFY_TIMEOUT,
) -> Verdict:
    """Does ``signature`` sign ``payload`` under ``NAMESPACE`` by a key ``allowed``
    (an allowed-signers text) lists for ``principal``?"""
    if not allowed:
        return Verdict(None, f"the policy lists no signing key for {principal}")
    with tempfile.TemporaryDirectory(prefix="cutter-sig-") as tmp:
        signers, sig = Path(tmp) / "allowed_signers", Path(tmp) / "approval.sig"
        signers.write_text(allowed, encoding="ascii")
        sig.write_text(signature, encoding="ascii")
        command = [SSH_KEYGEN, "-Y", "verify", "-n", NAMESPACE, "-f", str(signers)]
        command += ["-I", principal, "-s", str(sig)]
        try:
            done = subprocess.run(
                command,
                input=payload,
                capture_output=True,
                timeout=timeout,
                check=False,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Verdict(None, one_line(f"ssh-keygen -Y verify could not run: {exc}", 200))
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        said = one_line(done.stderr.decode(errors="replace") or out, 200)
        return Verdict(None, said or f"ssh-keygen -Y verify exited {done.returncode}")
    good = _GOOD.search(out)
    return Verdict(f"{good.group(1)} {good.group(2)}" if good else "verified")


async def verify(payload: bytes, signature: str, principal: str, allowed: str) -> Verdict:
    """``verify_blocking`` in a worker thread: the event loop keeps serving."""
    return await anyio.to_thread.run_sync(
        lambda: verify_blocking(payload, signature, principal, allowed)
    )
