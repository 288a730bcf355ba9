"""The one place a hook's process is run (docs/operations.md, Hooks).

``run_hook`` starts the hook without a shell, in a session (and so a process group)
of its own, with a minimal environment (``PATH``, ``HOME``, ``LANG`` of the daemon's,
and the event's ``CUTTER_*`` variables), in ``/``. It writes the event JSON to the
hook's stdin and closes it, keeps the first ``OUTPUT_LIMIT`` bytes of stdout and of
stderr (the rest is read and dropped, so a chatty hook never blocks on a full pipe),
and waits for it to exit — at most ``time_limit`` seconds. Past that, or when the
caller is cancelled, the whole process group is killed (SIGKILL) before the hook is
reaped: a hook's children die with it. A hook that cannot be started (no such
file, no permission, not an executable) is a ``HookResult`` with ``failure`` set,
never an exception.

The group is killed while its leader is not yet reaped, so its id cannot have been
reused by then. A hook that exits by itself is not killed further: children it left
running in the background (with their output redirected elsewhere) are its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from cutter.core.errors import one_line
from cutter.core.hook_events import OUTPUT_LIMIT, HookResult, env_for, event_json
from cutter.core.hook_names import HookEvent

_PASSED_ENV = ("PATH", "HOME", "LANG")
_CHUNK = 65536
_EOF_GRACE = 5.0  # seconds to see the end of a killed hook's pipes


async def run_hook(
    argv: Sequence[str],
    *,
    event: HookEvent,
    payload: Mapping[str, object],
    time_limit: float,
    source: str = "policy",
) -> HookResult:
    """Run one hook for ``event``; its result (see the module docstring)."""
    hook = argv[0]
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.update(env_for(event, payload))
    started = time.monotonic()
    try:
        # Shielded: a caller cancelled while the process starts would lose the Process
        # (anyio kills only its leader then), leaving the hook's children running; the
        # cancellation lands at the next checkpoint, inside the try that kills the group.
        with anyio.CancelScope(shield=True):
            process = await anyio.open_process(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd="/",
                env=env,
                start_new_session=True,
            )
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        return HookResult(
            hook=hook,
            source=source,
            event=event,
            exit_code=None,
            timed_out=False,
            failure=one_line(f"{why}: {hook}", 200),
            duration_ms=_since(started),
        )
    out, err = bytearray(), bytearray()
    timed_out = True  # until it is seen to finish in time (a cancelled caller kills it)
    try:
        with anyio.move_on_after(time_limit) as deadline:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_feed, process.stdin, event_json(event, payload))
                tg.start_soon(_drain, process.stdout, out)
                tg.start_soon(_drain, process.stderr, err)
            await process.wait()
        timed_out = deadline.cancelled_caught
    finally:
        await _end(process, kill=timed_out)
    return HookResult(
        hook=hook,
        source=source,
        event=event,
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        duration_ms=_since(started),
    )


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _feed(stream: ByteSendStream | None, data: bytes) -> None:
    if stream is None:
        return
    try:
        await stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the hook closed its stdin (or exited) without reading it: its right
    finally:
        await stream.aclose()


async def _drain(stream: ByteReceiveStream | None, kept: bytearray) -> None:
    """Read ``stream`` to its end, keeping its first ``OUTPUT_LIMIT`` bytes."""
    if stream is None:
        return
    while True:
        try:
            chunk = await stream.receive(_CHUNK)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        room = OUTPUT_LIMIT - len(kept)
        if room > 0:
            kept += chunk[:room]


async def _end(process: Process, *, kill: bool) -> None:
    """Kill the hook's process group (``kill``, or the hook is still running), then
    reap it, read its pipes to their end (the killed group held them: a pipe closes
    once read to its end) and close them; shielded, so a cancelled caller leaves no
    process. A pipe some process outside the group still holds is left after
    ``_EOF_GRACE``."""
    with anyio.CancelScope(shield=True):
        if kill or process.returncode is None:
            with suppress(ProcessLookupError, PermissionError):  # the group is empty already
                os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        with anyio.move_on_after(_EOF_GRACE):
            await _drain(process.stdout, bytearray())
            await _drain(process.stderr, bytearray())
        await process.aclose()
