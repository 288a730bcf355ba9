"""What a reviewer signs (pure): the canonical bytes of one decision, and the
shapes of the keys and signatures that prove it.

A signed approval proves that the holder of a key the policy lists for the
approver decided exactly this: this run, this gate, this request (its digest and
the nonce of this opening of the gate), approve or reject, as this approver, at
this time. Changing any of them — a replay at another request, another nonce,
the other decision — changes the payload, and the signature no longer verifies.

The payload is versioned text, one ``key=value`` a line in a fixed order; every
value is checked to be a single line first, so no field can forge another.
``ssh-keygen -Y sign`` signs it under ``NAMESPACE``, so a signature made for
git commits or anything else cannot be passed off as an approval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from cutter.core.errors import SignatureMalformed
from cutter.core.route import Gate

NAMESPACE = "iu-cutter-approval"
PAYLOAD_VERSION = "iu-cutter-approval-v1"
MAX_SIGNATURE_CHARS = 8192
MAX_KEYS_PER_REVIEWER = 16

_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_ARMOR_BODY = re.compile(r"[A-Za-z0-9+/=\n]+")
_KEY = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|"
    r"sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" ([A-Za-z0-9+/]{16,8192}={0,2})(?: [\x20-\x7e]{0,200})?"
)
_LINE = re.compile(r"[\x21-\x7e]{1,256}")


def issued_at_text(issued_at: datetime) -> str:
    """``issued_at`` as the payload spells it: UTC, microseconds, ``Z``."""
    if issued_at.utcoffset() is None:
        raise SignatureMalformed("issued_at has no timezone")
    return issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def approval_payload(
    *,
    run_id: str,
    gate: Gate,
    request_digest: str,
    nonce: str,
    decision: str,
    approver: str,
    issued_at: datetime,
    review_decision_id: str | None = None,
) -> bytes:
    """The bytes a reviewer signs for one decision; the same fields, the same bytes.
    ``review_decision_id`` (what an SG_2 approval rests on) is signed too; empty
    when there is none."""
    fields = (
        ("run_id", run_id),
        ("gate", gate.value),
        ("request_digest", request_digest),
        ("nonce", nonce),
        ("decision", decision),
        ("approver", approver),
        ("issued_at", issued_at_text(issued_at)),
    )
    for name, value in fields:
        if not _LINE.fullmatch(value):
            raise SignatureMalformed(f"{name} cannot be signed: not one printable word")
    review = review_decision_id or ""
    if review and not _LINE.fullmatch(review):
        raise SignatureMalformed("review_decision_id cannot be signed: not one printable word")
    lines = (*fields, ("review_decision_id", review))
    return (PAYLOAD_VERSION + "\n" + "".join(f"{k}={v}\n" for k, v in lines)).encode()


def check_signature(text: str) -> str:
    """An armored SSH signature (``-----BEGIN SSH SIGNATURE-----`` …), bounded in size;
    whether it verifies is ``ssh-keygen``'s to say."""
    if len(text) > MAX_SIGNATURE_CHARS:
        raise SignatureMalformed(f"signature longer than {MAX_SIGNATURE_CHARS} characters")
    body = text.strip()
    if not (body.startswith(_BEGIN) and body.endswith(_END)):
        raise SignatureMalformed("not an armored SSH signature (ssh-keygen -Y sign)")
    inner = body[len(_BEGIN) : -len(_END)].strip()
    if not inner or not _ARMOR_BODY.fullmatch(inner):
        raise SignatureMalformed("the SSH signature's body is not base64")
    return f"{_BEGIN}\n{inner}\n{_END}\n"


def public_key(text: str) -> str:
    """A reviewer's public key as ``ssh-keygen`` prints it (``TYPE BASE64 [comment]``),
    reduced to ``TYPE BASE64``: nothing of it can add options to an allowed-signers line."""
    match = _KEY.fullmatch(text.strip())
    if match is None:
        raise SignatureMalformed(f"{text[:40]!r}… is not an SSH public key (TYPE BASE64)")
    return f"{match.group(1)} {match.group(2)}"


def allowed_signers(principal: str, keys: Mapping[str, tuple[str, ...]]) -> str:
    """The allowed-signers file that lets exactly ``principal``'s policy keys sign
    approvals, and nothing else; empty when the policy lists no key for it."""
    return "".join(
        f'{principal} namespaces="{NAMESPACE}" {public_key(key)}\n'
        for key in keys.get(principal, ())
    )
