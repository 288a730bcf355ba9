"""A small, application-agnostic actor runtime on anyio (asyncio and trio).

Each actor handles one message at a time from a bounded mailbox, runs as a task of its
system's task group under a parent, and reports failures to its parent as a
`ChildFailed` system message.
"""

from actors.actor import MAILBOX_SIZE, Actor
from actors.context import Context
from actors.errors import ActorCrashed, ActorError, ActorStopped, AskTimeout
from actors.messages import ChildFailed
from actors.ref import ActorRef
from actors.request import Later, Request
from actors.system import ActorSystem

__all__ = [
    "MAILBOX_SIZE",
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "ChildFailed",
    "Context",
    "Later",
    "Request",
]
