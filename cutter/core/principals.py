"""Who is speaking: the principal a transport proved, and the name a command may act as.

A principal is a login name the kernel vouched for: on the Unix socket the uid of
the peer (``SO_PEERCRED``), mapped through the password database; on ``--stdio``
the daemon's own uid (whoever can write the daemon's stdin is the user who started
it). A uid without a password entry is ``uid:N``. A login name outside the
principal alphabet (``cutter.core.ids.check_token``) proves nobody: such a caller gets
``E_PRINCIPAL_UNKNOWN`` for everything but ``ping``.

A command may declare a name (``started_by``, ``approver``, ``by``); ``acting``
accepts it when it is the principal, or when the policy names the principal a
relay — then the declared name acts, and the relay is recorded beside it.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass

from cutter.core.errors import InvalidIdentifier, PrincipalMismatch, PrincipalUnknown
from cutter.core.ids import check_token
from cutter.core.policy import Policy

Lookup = Callable[[int], str]


def _login_name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name


def principal_of_uid(uid: int, lookup: Lookup = _login_name) -> str | None:
    """The principal of ``uid``: its login name, ``uid:N`` without a password entry,
    None when the name is not a well-formed principal (it then proves nobody)."""
    try:
        name = lookup(uid)
    except KeyError:
        return f"uid:{uid}"
    try:
        return check_token("principal", name)
    except InvalidIdentifier:
        return None


def own_principal() -> str:
    """The daemon's own principal (``--stdio`` callers, and the default admin)."""
    return principal_of_uid(os.getuid()) or f"uid:{os.getuid()}"


@dataclass(frozen=True, slots=True)
class Caller:
    """One connection's speaker: the authenticated principal (None: nobody proven)
    and how the log describes the connection."""

    principal: str | None
    peer: str

    def require(self) -> str:
        if self.principal is None:
            raise PrincipalUnknown(f"no authenticated principal on this connection ({self.peer})")
        return self.principal


def acting(policy: Policy, caller: Caller, kind: str, declared: str) -> str:
    """The name a command acts as: ``declared`` when it is the caller's principal, or
    when the policy names the principal a relay; otherwise ``PrincipalMismatch``."""
    principal = caller.require()
    name = check_token(kind, declared)
    if name == principal or policy.is_relay(principal):
        return name
    raise PrincipalMismatch(
        f"{kind} {name} is not the authenticated principal {principal}, "
        "and the policy names it no relay"
    )
