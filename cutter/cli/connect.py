"""Talking to a running daemon from the command line: where it is, and how it fails.

``Endpoint`` runs a piece of client work on one connection and turns every failure
into a ``ClientFailure``: a one-line ``CODE: message`` on stderr and exit 1, or
``Unreachable`` (exit 2) when no daemon answers. ``daemon_options`` gives every
subcommand the same ``--socket`` and ``--json``.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click
import msgspec

from cutter.core.errors import CutterError, ErrorCode
from cutter.core.protocol import AnyCommand, AnyReply, Error, Reply, encode
from cutter.core.secrets import scrub
from cutter.core.state_dir import DEFAULT as DEFAULT_STATE_DIR
from cutter.daemon.client import Client, DaemonUnavailable, ReplyTooLarge
from cutter.daemon.client import expect as client_expect

DEFAULT_SOCKET = DEFAULT_STATE_DIR.socket
EXIT_REFUSED = 1  # the daemon (or this client) answered with an error
EXIT_UNREACHABLE = 2  # no daemon on the socket, or it hung up
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

R = TypeVar("R", bound=Reply)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# --- errors ------------------------------------------------------------------------
class ClientFailure(click.ClickException):
    """A one-line ``CODE: message`` on stderr and exit code 1; never a traceback."""

    exit_code = EXIT_REFUSED

    def __init__(self, code: ErrorCode, message: str, *, error_id: str | None = None) -> None:
        super().__init__(scrub(message))  # a message may quote a DSN: never its password
        self.code = code
        self.error_id = error_id

    def frame(self) -> Error:
        return Error(code=self.code, message=self.message, error_id=self.error_id)

    def format_message(self) -> str:
        suffix = f" (error id {self.error_id})" if self.error_id else ""
        return f"{self.code}: {self.message}{suffix}"

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class Unreachable(ClientFailure):
    """No daemon answers on the socket, or it hung up without a reply: exit 2."""

    exit_code = EXIT_UNREACHABLE


def expect(reply: AnyReply, kind: type[R]) -> R:
    """The reply if it is a ``kind``; an Error reply (or another kind) becomes a
    ClientFailure with the code the client raised (``cutter.daemon.client.expect``)."""
    try:
        return client_expect(reply, kind)
    except CutterError as exc:
        raise ClientFailure(exc.code, exc.message, error_id=exc.error_id) from None


# --- talking to the daemon ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the daemon is and how to print what it says."""

    socket: Path
    as_json: bool

    def call(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work`` on one connection; any failure becomes a ClientFailure."""

        async def session() -> T:
            async with Client(self.socket) as client:
                return await work(client)

        try:
            return anyio.run(session)
        except ClientFailure as exc:
            self.fail(exc)
        except DaemonUnavailable as exc:
            self.fail(self.unreachable(exc))
        except ReplyTooLarge as exc:
            self.fail(ClientFailure(exc.code, exc.message))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.fail(
                ClientFailure(ErrorCode.BAD_REPLY, f"the daemon sent a frame I cannot read: {exc}")
            )
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)

    def request(self, command: AnyCommand, kind: type[R]) -> R:
        async def one(client: Client) -> R:
            return expect(await client.request(command), kind)

        return self.call(one)

    def unreachable(self, exc: DaemonUnavailable) -> ClientFailure:
        where = "" if str(self.socket) in exc.message else f" ({self.socket})"
        return Unreachable(
            exc.code,
            f"{exc.message}{where}; is `cutter daemon` running? (--socket or CUTTER_SOCKET)",
        )

    def fail(self, exc: ClientFailure) -> NoReturn:
        if self.as_json:
            self.frame(exc.frame())
        raise exc

    def frame(self, reply: Reply) -> None:
        """The frame, one line, exactly as the protocol encodes it."""
        click.echo(encode(reply).decode().rstrip("\n"))


def daemon_options(func: F) -> F:
    """``--socket`` and ``--json``, on every subcommand that talks to the daemon."""
    func = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the reply frame as one JSON line (the protocol's own encoding).",
    )(func)
    func = click.option(
        "--socket",
        "socket_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_SOCKET,
        envvar="CUTTER_SOCKET",
        show_default=True,
        show_envvar=True,
        help="The daemon's Unix socket (<state-dir>/daemon.sock).",
    )(func)
    return func
