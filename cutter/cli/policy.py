"""``cutter policy show|set``: the policy of who may do what, over the daemon's socket.

Over the socket, so the daemon knows who asks: ``set`` is refused
(``E_NOT_PERMITTED``) unless the current policy names the caller's principal an
admin, and a file that does not parse is ``E_POLICY_INVALID``; either way nothing
changes. The daemon parses the file, so what it checks is what it enforces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
import msgspec

from cutter.cli.connect import ClientFailure, Endpoint, daemon_options
from cutter.core.errors import ErrorCode
from cutter.core.protocol import PolicyInfo, SetPolicy, ShowPolicy

MAX_POLICY_BYTES = 256 * 1024


@click.group()
def policy() -> None:
    """Who may start runs and approve each gate; who may change that."""


def _show(target: Endpoint, reply: PolicyInfo) -> None:
    if target.as_json:
        target.frame(reply)
        return
    origin = (
        "default (no policy set; from the daemon's options)"
        if reply.version == 0
        else f"version {reply.version}, set by {reply.set_by} at {reply.set_at.isoformat()}"
    )
    click.echo(f"# policy {origin}; you are {reply.principal}")
    body = msgspec.json.format(msgspec.json.encode(reply.policy), indent=2)
    click.echo(body.decode())


@policy.command("show")
@daemon_options
def policy_show(socket_path: Path, as_json: bool) -> None:
    """Print the policy in force (JSON, the form `policy set` takes)."""
    target = Endpoint(socket_path, as_json)
    _show(target, target.request(ShowPolicy(), PolicyInfo))


@policy.command("set")
@daemon_options
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The new policy: TOML, or JSON when the name ends in .json.",
)
def policy_set(socket_path: Path, as_json: bool, path: Path) -> None:
    """Replace the policy (admins only); the change is recorded as a KB doc."""
    target = Endpoint(socket_path, as_json)
    fmt: Literal["toml", "json"] = "json" if path.suffix.lower() == ".json" else "toml"
    data = path.read_bytes()
    if len(data) > MAX_POLICY_BYTES:
        target.fail(
            ClientFailure(ErrorCode.POLICY_INVALID, f"{path} is over {MAX_POLICY_BYTES} bytes")
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        target.fail(ClientFailure(ErrorCode.POLICY_INVALID, f"{path} is not UTF-8 text"))
    _show(target, target.request(SetPolicy(text=text, format=fmt), PolicyInfo))


COMMANDS: tuple[click.Command, ...] = (policy,)
