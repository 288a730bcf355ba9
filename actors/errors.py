"""The runtime's exceptions: one root class, typed attributes, one-line messages."""

from __future__ import annotations


class ActorError(Exception):
    """Root of every error the actor runtime raises."""


class ActorStopped(ActorError):
    """The actor has stopped (or failed) and accepts no more messages."""

    def __init__(self, name: str) -> None:
        super().__init__(f"actor {name!r} has stopped")
        self.name = name

    def __reduce__(self) -> tuple[type[ActorStopped], tuple[str]]:
        return (type(self), (self.name,))


class ActorCrashed(ActorError):
    """The actor failed while handling the message this ask was waiting on."""

    def __init__(self, name: str, error_id: str, error_type: str) -> None:
        super().__init__(f"actor {name!r} crashed with {error_type} (error_id={error_id})")
        self.name = name
        self.error_id = error_id
        self.error_type = error_type

    def __reduce__(self) -> tuple[type[ActorCrashed], tuple[str, str, str]]:
        return (type(self), (self.name, self.error_id, self.error_type))


class AskTimeout(ActorError):
    """No reply arrived within the ask's timeout."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"ask to actor {name!r} timed out after {timeout}s")
        self.name = name
        self.timeout = timeout

    def __reduce__(self) -> tuple[type[AskTimeout], tuple[str, float]]:
        return (type(self), (self.name, self.timeout))
