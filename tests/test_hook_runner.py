"""The hook process runner (``cutter.runtime.hooks.run_hook``) and the hooks directory
(``cutter.runtime.hook_dir``): what a hook is told, what is kept of what it says, and
that a hook past its time — or whose caller gives up — leaves no process behind."""

from __future__ import annotations

import json
import os
import select
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from cutter.core.errors import HooksDirUnsafe
from cutter.core.hook_events import OUTPUT_LIMIT
from cutter.core.hook_names import HookEvent
from cutter.runtime.hook_dir import check_hooks_dir, hook_for
from cutter.runtime.hooks import run_hook
from cutter.runtime.logs import get_logger

pytestmark = [pytest.mark.anyio, pytest.mark.subprocess]

PAYLOAD = {"run_id": "run-1", "doc_id": "doc-1", "mode": "LIVE", "gate": "SG_1", "x": None}


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o700)
    return path


def dead(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaped has): waits for its
    end, at most 30 s, on a pidfd — the kill is sent, its delivery is the kernel's."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 30)[0])
    finally:
        os.close(fd)


def hanging(tmp_path: Path, *, ready: Path | None = None) -> Path:
    """A hook that starts a child in its group, says both pids (then writes ``ready``,
    a FIFO, when given), and waits forever."""
    told = "" if ready is None else f"echo ready > {ready}\n"
    return script(
        tmp_path / "hang",
        f"sleep 100000 &\necho $! > {tmp_path}/child.pid\necho $$ > {tmp_path}/hook.pid\n"
        f"{told}wait\n",
    )


def pids(tmp_path: Path) -> list[int]:
    return [int((tmp_path / name).read_text()) for name in ("hook.pid", "child.pid")]


async def test_a_hook_gets_the_event_on_stdin_and_in_a_minimal_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TEST_LEAK", "not for hooks")
    hook = script(
        tmp_path / "h",
        f"cat > {tmp_path}/stdin\nenv > {tmp_path}/env\n"
        "echo fine\necho 'no, not today' >&2\nexit 3\n",
    )
    result = await run_hook(
        [str(hook)], event=HookEvent.BEFORE_LEG_A, payload=PAYLOAD, time_limit=30
    )
    assert (result.exit_code, result.timed_out, result.failure) == (3, False, None)
    assert (result.stdout, result.stderr) == ("fine\n", "no, not today\n")
    assert (result.hook, result.event) == (str(hook), HookEvent.BEFORE_LEG_A)
    told = json.loads((tmp_path / "stdin").read_text())
    assert told == {"event": "before_leg_a", **PAYLOAD}
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
    assert {k: v for k, v in env.items() if k.startswith("CUTTER_")} == {
        "CUTTER_EVENT": "before_leg_a",
        "CUTTER_RUN_ID": "run-1",
        "CUTTER_DOC_ID": "doc-1",
        "CUTTER_MODE": "LIVE",
        "CUTTER_GATE": "SG_1",
    }
    # Only PATH, HOME and LANG come from the daemon's environment (sh adds PWD and the like).
    assert "HOOK_TEST_LEAK" not in env
    assert set(env) - {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"} <= {
        k for k in env if k.startswith("CUTTER_")
    }
    assert env["PWD"] == "/"


async def test_output_is_kept_bounded_and_the_rest_drained(tmp_path: Path) -> None:
    """A hook printing a megabyte on each stream never blocks on a full pipe."""
    hook = script(
        tmp_path / "chatty",
        "head -c 1000000 /dev/zero | tr '\\0' a\nhead -c 1000000 /dev/zero | tr '\\0' b >&2\n",
    )
    result = await run_hook([str(hook)], event=HookEvent.CLOSEOUT, payload={}, time_limit=60)
    assert (result.exit_code, result.timed_out) == (0, False)
    assert result.stdout == "a" * OUTPUT_LIMIT
    assert result.stderr == "b" * OUTPUT_LIMIT


async def test_a_hook_past_its_time_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    result = await run_hook(
        [str(hanging(tmp_path))], event=HookEvent.BEFORE_LEG_A, payload={}, time_limit=2
    )
    assert (result.exit_code, result.timed_out, result.failure) == (None, True, None)
    hook_pid, child_pid = pids(tmp_path)
    assert dead(hook_pid)
    assert dead(child_pid)  # the child in its group too, not only the hook


async def test_a_cancelled_caller_leaves_no_hook_running(tmp_path: Path) -> None:
    """A caller cancelled mid-hook (the phase's own timeout) kills the hook's group."""
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    hook = hanging(tmp_path, ready=ready)

    async def call() -> None:
        await run_hook([str(hook)], event=HookEvent.CLOSEOUT, payload={}, time_limit=120)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        # Blocks until the hook has written its pids and opened the FIFO: a handshake.
        assert await anyio.to_thread.run_sync(ready.read_text) == "ready\n"
        tg.cancel_scope.cancel()
    hook_pid, child_pid = pids(tmp_path)
    assert dead(hook_pid)
    assert dead(child_pid)


async def test_a_hook_that_cannot_start_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    missing = await run_hook(
        [str(tmp_path / "nope")], event=HookEvent.CLOSEOUT, payload={}, time_limit=5
    )
    assert (missing.exit_code, missing.timed_out) == (None, False)
    assert missing.failure == f"No such file or directory: {tmp_path / 'nope'}"
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\nexit 0\n")  # not executable
    denied = await run_hook([str(plain)], event=HookEvent.CLOSEOUT, payload={}, time_limit=5)
    assert denied.failure == f"Permission denied: {plain}"
    assert not denied.passed


async def test_a_hooks_directory_named_relative_still_runs_its_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cutter daemon --state-dir st``: the hook is found relative to where the daemon
    started and run by its absolute path (hooks run in ``/``)."""
    hooks = tmp_path / "st" / "hooks"
    hooks.mkdir(parents=True, mode=0o700)
    script(hooks / "gate_opened", "exit 0\n")
    monkeypatch.chdir(tmp_path)
    found = hook_for(Path("st/hooks"), HookEvent.GATE_OPENED, get_logger())
    assert found == hooks / "gate_opened"
    assert found is not None
    result = await run_hook([str(found)], event=HookEvent.GATE_OPENED, payload={}, time_limit=5)
    assert result.passed, result


def test_the_hooks_directory_names_its_hooks_and_warns_of_the_rest(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir(mode=0o700)
    script(hooks / "gate_opened", "exit 0\n")
    script(hooks / "before_leg_b", "exit 0\n")  # no such event
    (hooks / "closeout").write_text("#!/bin/sh\nexit 0\n")  # not executable
    log = get_logger()
    with capture_logs() as logs:
        assert check_hooks_dir(hooks, log) is True
        assert hook_for(hooks, HookEvent.GATE_OPENED, log) == hooks / "gate_opened"
        assert hook_for(hooks, HookEvent.CLOSEOUT, log) is None
        assert hook_for(hooks, HookEvent.RUN_STOPPED, log) is None
    ignored = sorted(e["path"] for e in logs if e["event"] == "hook_ignored")
    assert ignored == sorted(
        [str(hooks / "before_leg_b"), str(hooks / "closeout"), str(hooks / "closeout")]
    )
    assert check_hooks_dir(tmp_path / "none", log) is False
    assert hook_for(tmp_path / "none", HookEvent.GATE_OPENED, log) is None


def test_a_hooks_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    script(hooks / "gate_opened", "exit 0\n")
    log = get_logger()
    hooks.chmod(0o777)
    with pytest.raises(HooksDirUnsafe, match="writable by others \\(mode 0777\\)"):
        check_hooks_dir(hooks, log)
    with pytest.raises(HooksDirUnsafe):
        hook_for(hooks, HookEvent.GATE_OPENED, log)
    hooks.chmod(0o700)
    (hooks / "gate_opened").chmod(0o720)  # the hook itself group-writable
    with pytest.raises(HooksDirUnsafe, match="the hook is writable by others"):
        hook_for(hooks, HookEvent.GATE_OPENED, log)
    assert HooksDirUnsafe.code == "E_HOOKS_DIR_UNSAFE"
