"""Hooks as values (pure): the events a hook can be named for, what a hook run
returns, what it is told, and what a ``before_*`` hook's result means for the run.

Two kinds of event:

- ``before_leg_a`` and ``before_lifecycle_enact`` guard a write: a hook that exits
  non-zero vetoes it (``STOP_HOOK_VETOED``), one that outlives its timeout is killed
  and stops the run (``STOP_HOOK_TIMEOUT``), one that cannot be run stops it too
  (``STOP_HOOK_FAILED``);
- ``gate_opened``, ``approval_consumed``, ``run_stopped``, ``closeout`` and
  ``approval_reminder`` are notices (``cutter.core.notices``): their hooks are run by
  the outbox's deliverer after the notice is saved, like webhooks, and whatever they
  do the run goes on (``notice_payload`` is what they are told).

A hook is told the event twice: as one JSON object on its stdin (``payload`` with
``event`` added) and as environment variables, ``CUTTER_<KEY>`` for each scalar of
the payload (``env_for``). The process itself is run by ``cutter.runtime.hooks``.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from cutter.core.errors import (
    PhaseStop,
    StopHookFailed,
    StopHookTimeout,
    StopHookVetoed,
    one_line,
)
from cutter.core.hook_names import HookEvent
from cutter.core.notices import Notice
from cutter.core.route import Gate, Pin
from cutter.core.sidecar import Sidecar

OUTPUT_LIMIT = 4096  # bytes of a hook's stdout, and of its stderr, that are kept
_MESSAGE_OUTPUT = 200  # characters of a hook's output a stop message quotes


class HookResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One run of one hook. ``exit_code`` is None when it did not exit by itself (it
    timed out and was killed, or ``failure`` says why it could not be started); a
    negative code is the signal that ended it. ``stdout``/``stderr`` are the first
    ``OUTPUT_LIMIT`` bytes of each, decoded with replacement."""

    hook: str  # what ran: the hook file's path, or the policy command's program
    source: str  # "directory" or "policy"
    event: HookEvent
    exit_code: int | None
    timed_out: bool
    failure: str | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.failure is None


def stop_for(result: HookResult, timeout: float) -> PhaseStop | None:
    """What a ``before_*`` hook's result does to the run: None when it passed, else
    the stop, one line naming the hook and what it said."""
    if result.passed:
        return None
    what = f"{result.event} hook {result.hook}"
    if result.failure is not None:
        return StopHookFailed(f"{what} could not be run: {result.failure}")
    if result.timed_out:
        return StopHookTimeout(f"{what} did not finish within {timeout:g}s and was killed")
    code = result.exit_code
    status = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited {code}"
    said = first_line(result.stderr) or first_line(result.stdout)
    return StopHookVetoed(f"{what} {status}" + (f": {said}" if said else " (it printed nothing)"))


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, one line, at most a few hundred characters."""
    for line in text.splitlines():
        if line.strip():
            return one_line(line, _MESSAGE_OUTPUT)
    return ""


def env_for(event: HookEvent, payload: Mapping[str, object]) -> dict[str, str]:
    """``CUTTER_EVENT`` and ``CUTTER_<KEY>`` for each string, number or flag of the
    payload (nothing for a missing or None value)."""
    env = {"CUTTER_EVENT": event.value}
    for key, value in payload.items():
        if isinstance(value, bool):
            env[f"CUTTER_{key.upper()}"] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            env[f"CUTTER_{key.upper()}"] = str(value)
    return env


def event_json(event: HookEvent, payload: Mapping[str, object]) -> bytes:
    """What a hook reads on its stdin: the payload with ``event``, one JSON object."""
    return msgspec.json.encode({"event": event.value, **payload}) + b"\n"


def run_facts(sidecar: Sidecar) -> dict[str, object]:
    """What every event says of its run."""
    return {
        "run_id": sidecar.run_id,
        "doc_id": sidecar.doc_id,
        "mode": sidecar.mode.value,
        "state": sidecar.state.value,
        "started_by": sidecar.started_by,
    }


def before_leg_a(sidecar: Sidecar, change_set_id: str, iu_count: int) -> dict[str, object]:
    """``iu_count`` is the checked manifest's (leg A's contract does not take the pin)."""
    pins = sidecar.pins
    return {
        **run_facts(sidecar),
        "gate": Gate.SG_1.value,
        "source_version_id": str(pins[Pin.SOURCE_VERSION_ID]),
        "manifest_digest": str(pins[Pin.MANIFEST_DIGEST]),
        "iu_count": iu_count,
        "backup_id": str(pins[Pin.BACKUP_ID]),
        "change_set_id": change_set_id,
    }


def before_lifecycle_enact(sidecar: Sidecar) -> dict[str, object]:
    pins = sidecar.pins
    return {
        **run_facts(sidecar),
        "gate": Gate.SG_2.value,
        "source_version_id": str(pins[Pin.SOURCE_VERSION_ID]),
        "iu_count": int(pins[Pin.IU_COUNT]),
        "change_set_id": str(pins[Pin.CHANGE_SET_ID]),
    }


def notice_payload(notice: Notice) -> dict[str, object]:
    """What a notice's hook is told: the notice's id, run, document and time, and its
    detail (``mode`` among it)."""
    return {
        "notice_id": notice.notice_id,
        "run_id": notice.run_id,
        "doc_id": notice.doc_id,
        "at": notice.at.isoformat(),
        **notice.detail,
    }


class NoHooks:
    """The ``Hooks`` of a runner that runs none."""

    async def before(self, event: HookEvent, payload: Mapping[str, object]) -> None:
        pass


NO_HOOKS = NoHooks()
