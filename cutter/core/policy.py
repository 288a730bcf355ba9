"""Who may do what (pure): the policy the daemon enforces, and how it is parsed.

A policy names principals — the login names the transport authenticated
(``cutter.core.principals``) — never what a client declares:

- ``admins`` may change the policy, shut the daemon down and release the kill switch;
- ``relays`` may act for another name (a bot forwarding decisions made elsewhere):
  their declared name is used and both are recorded;
- ``starters`` may start runs; each gate's ``approvers`` may decide it, and the gate
  needs ``required_approvals`` distinct ones, each at most ``ttl_seconds`` old;
- ``documents``: the first rule whose glob ``pattern`` matches a doc_id replaces
  any of those three it names, for that document.

``"*"`` in a list means every authenticated principal. ``proofs`` says which proofs
of an approver a gate accepts: ``"peer"`` (the daemon's attestation of the socket
principal that stored the decision) and ``"signature"`` (the approver's own SSH
signature over the decision, ``cutter.core.signing``, verified against the keys
``reviewer_keys`` lists for that approver — never against anything the approval
carries) and ``"database"`` (an approval a reviewer inserted into PostgreSQL's
``db_approvals`` as their own login, its approver stamped by the database:
``cutter.core.db_approvals``) and ``"web"`` (a decision made on the review page through a
one-time link the daemon minted, over the socket, for the principal it authenticated:
``cutter.web``). ``live_proofs``, when set, replaces ``proofs`` for LIVE runs: signatures
for the runs that write production rows, the page for dry runs. A gate whose
``proofs`` is ``["signature"]`` takes signed approvals only.

``hooks`` maps a hook event (``cutter.core.hook_names``) to a command, an argv list
run without a shell (its program an absolute path), beside any hook of the hooks
directory; each hook run is bounded by ``hook_timeout_seconds`` (docs/operations.md,
Hooks).

``parse_policy`` reads TOML or JSON strictly: an unknown key, a bad name, a
pattern outside the doc_id alphabet, a number out of range is ``PolicyInvalid``.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from typing import Literal

import msgspec

from cutter.core.errors import InvalidIdentifier, PolicyInvalid, SignatureMalformed, one_line
from cutter.core.hook_names import HookEvent
from cutter.core.ids import check_token
from cutter.core.mode import Mode
from cutter.core.route import Gate
from cutter.core.signing import MAX_KEYS_PER_REVIEWER, public_key
from cutter.core.webhooks import Webhook, check_webhooks

ANYONE = "*"
MAX_NAMES = 200
MAX_DOCUMENT_RULES = 200
_PATTERN = re.compile(r"[A-Za-z0-9_.:*?\[\]!-]{1,128}")
MAX_HOOK_ARGS = 32
MAX_HOOK_ARG_LENGTH = 1024
HOOK_TIMEOUT_RANGE = (1, 120)  # seconds; two hooks of an event stay within a phase's 300 s

Proof = Literal["peer", "signature", "database", "web"]


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class GateRule(_Strict, frozen=True, kw_only=True):
    approvers: tuple[str, ...] = (ANYONE,)
    required_approvals: int = 1
    ttl_seconds: int = 24 * 3600
    allow_self_approval: bool = False
    proofs: tuple[Proof, ...] = ("peer",)
    # The proofs a LIVE run's gate accepts instead; None: the same as ``proofs``.
    live_proofs: tuple[Proof, ...] | None = None

    def proofs_for(self, mode: Mode) -> tuple[Proof, ...]:
        """The proofs this gate accepts for a run in ``mode``."""
        if mode is Mode.LIVE and self.live_proofs is not None:
            return self.live_proofs
        return self.proofs


class DocumentRule(_Strict, frozen=True, kw_only=True):
    pattern: str
    starters: tuple[str, ...] | None = None
    sg_1: GateRule | None = None
    sg_2: GateRule | None = None


class Policy(_Strict, frozen=True, kw_only=True):
    admins: tuple[str, ...] = ()
    relays: tuple[str, ...] = ()
    starters: tuple[str, ...] = (ANYONE,)
    sg_1: GateRule = GateRule()
    sg_2: GateRule = GateRule()
    documents: tuple[DocumentRule, ...] = ()
    # principal -> its SSH public keys ("ssh-ed25519 AAAA…"): who may sign approvals.
    reviewer_keys: dict[str, tuple[str, ...]] = {}
    # hook event -> argv run without a shell (after the hooks directory's hook, if any).
    hooks: dict[HookEvent, tuple[str, ...]] = {}
    hook_timeout_seconds: int = 10
    # Where notices are POSTed (cutter.core.webhooks, docs/notifications.md), and how
    # long before a waiting gate's TTL runs out it is due an approval_reminder (None: never).
    webhooks: tuple[Webhook, ...] = ()
    remind_before_seconds: int | None = None

    def _rule(self, doc_id: str) -> DocumentRule | None:
        for rule in self.documents:
            if fnmatch.fnmatchcase(doc_id, rule.pattern):
                return rule
        return None

    def starters_for(self, doc_id: str) -> tuple[str, ...]:
        rule = self._rule(doc_id)
        return self.starters if rule is None or rule.starters is None else rule.starters

    def gate_rule(self, doc_id: str, gate: Gate) -> GateRule:
        rule = self._rule(doc_id)
        override = None if rule is None else (rule.sg_1 if gate is Gate.SG_1 else rule.sg_2)
        if override is not None:
            return override
        return self.sg_1 if gate is Gate.SG_1 else self.sg_2

    def is_admin(self, principal: str) -> bool:
        return listed(principal, self.admins)

    def may_end(self, principal: str, name: str, doc_id: str, started_by: str) -> bool:
        """Whether ``name`` (acting for ``principal``) may abort a run of ``doc_id``
        started by ``started_by``: its starter, an approver of either of the
        document's gates (who could reject it anyway), or an admin."""
        return (
            name == started_by
            or self.is_admin(principal)
            or any(listed(name, self.gate_rule(doc_id, gate).approvers) for gate in Gate)
        )

    def is_relay(self, principal: str) -> bool:
        return principal in self.relays  # a relay is named: "*" never makes everyone one


def listed(name: str, names: tuple[str, ...]) -> bool:
    return ANYONE in names or name in names


# -- parsing ------------------------------------------------------------------------


def parse_policy(text: str, fmt: Literal["toml", "json"]) -> Policy:
    """A policy from a file's text, checked whole; ``PolicyInvalid`` saying why not."""
    try:
        raw: object = tomllib.loads(text) if fmt == "toml" else msgspec.json.decode(text)
        policy = msgspec.convert(raw, Policy)
    except (tomllib.TOMLDecodeError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PolicyInvalid(one_line(str(exc), 200)) from None
    return check_policy(policy)


def check_policy(policy: Policy) -> Policy:
    _names("admins", policy.admins, allow_anyone=False)
    if not policy.admins:
        raise PolicyInvalid("admins is empty: nobody could change the policy again")
    _names("relays", policy.relays, allow_anyone=False)
    _names("starters", policy.starters)
    _reviewer_keys(policy.reviewer_keys)
    _gate("sg_1", policy.sg_1, policy.reviewer_keys)
    _gate("sg_2", policy.sg_2, policy.reviewer_keys)
    _hooks(policy.hooks, policy.hook_timeout_seconds)
    check_webhooks(policy.webhooks)
    if policy.remind_before_seconds is not None and not (
        60 <= policy.remind_before_seconds <= 30 * 24 * 3600
    ):
        raise PolicyInvalid("remind_before_seconds must be 60 s .. 30 days")
    if len(policy.documents) > MAX_DOCUMENT_RULES:
        raise PolicyInvalid(f"more than {MAX_DOCUMENT_RULES} document rules")
    for index, rule in enumerate(policy.documents):
        where = f"documents[{index}]"
        if not _PATTERN.fullmatch(rule.pattern):
            raise PolicyInvalid(f"{where}.pattern {rule.pattern[:40]!r} is not a doc_id glob")
        if rule.starters is not None:
            _names(f"{where}.starters", rule.starters)
        if rule.sg_1 is not None:
            _gate(f"{where}.sg_1", rule.sg_1, policy.reviewer_keys)
        if rule.sg_2 is not None:
            _gate(f"{where}.sg_2", rule.sg_2, policy.reviewer_keys)
    return policy


def _names(where: str, names: tuple[str, ...], *, allow_anyone: bool = True) -> None:
    if len(names) > MAX_NAMES:
        raise PolicyInvalid(f"{where} names more than {MAX_NAMES} principals")
    for name in names:
        if name == ANYONE and allow_anyone:
            continue
        try:
            check_token(where, name)
        except InvalidIdentifier as exc:
            raise PolicyInvalid(exc.message) from None


def _reviewer_keys(keys: dict[str, tuple[str, ...]]) -> None:
    _names("reviewer_keys", tuple(keys), allow_anyone=False)
    for name, listed_keys in keys.items():
        if not listed_keys or len(listed_keys) > MAX_KEYS_PER_REVIEWER:
            raise PolicyInvalid(f"reviewer_keys.{name} must list 1..{MAX_KEYS_PER_REVIEWER} keys")
        for key in listed_keys:
            try:
                public_key(key)
            except SignatureMalformed as exc:
                raise PolicyInvalid(f"reviewer_keys.{name}: {exc.message}") from None


def _gate(where: str, rule: GateRule, keys: dict[str, tuple[str, ...]]) -> None:
    _names(f"{where}.approvers", rule.approvers)
    if not 1 <= rule.required_approvals <= 10:
        raise PolicyInvalid(f"{where}.required_approvals must be 1..10")
    if not 60 <= rule.ttl_seconds <= 30 * 24 * 3600:
        raise PolicyInvalid(f"{where}.ttl_seconds must be 60 s .. 30 days")
    if ANYONE not in rule.approvers and len(set(rule.approvers)) < rule.required_approvals:
        raise PolicyInvalid(
            f"{where} needs {rule.required_approvals} approvers but names "
            f"{len(set(rule.approvers))}: it could never be passed"
        )
    for field, proofs in (("proofs", rule.proofs), ("live_proofs", rule.live_proofs)):
        if proofs is None:
            continue
        if not proofs:
            raise PolicyInvalid(f"{where}.{field} is empty: no approval could pass")
        if set(proofs) == {"signature"} and ANYONE not in rule.approvers:
            signers = {name for name in rule.approvers if name in keys}
            if len(signers) < rule.required_approvals:
                raise PolicyInvalid(
                    f"{where} takes signatures only and needs {rule.required_approvals} "
                    f"approvers, but reviewer_keys has keys for {len(signers)} of them"
                )


def _hooks(hooks: dict[HookEvent, tuple[str, ...]], timeout: int) -> None:
    low, high = HOOK_TIMEOUT_RANGE
    if not low <= timeout <= high:
        raise PolicyInvalid(f"hook_timeout_seconds must be {low}..{high}")
    for event, argv in hooks.items():
        where = f"hooks.{event.value}"
        if not argv or len(argv) > MAX_HOOK_ARGS:
            raise PolicyInvalid(f"{where} must be a command of 1..{MAX_HOOK_ARGS} arguments")
        if not argv[0].startswith("/"):
            raise PolicyInvalid(f"{where}: the program {argv[0][:60]!r} is not an absolute path")
        for arg in argv:
            if len(arg) > MAX_HOOK_ARG_LENGTH or "\x00" in arg:
                raise PolicyInvalid(
                    f"{where}: an argument is over {MAX_HOOK_ARG_LENGTH} characters or holds a NUL"
                )
