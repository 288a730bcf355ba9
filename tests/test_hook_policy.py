"""The policy's ``hooks`` table and ``hook_timeout_seconds``, parsed strictly: an event
that does not exist, a command that is not an argv of an absolute program, a timeout
out of bounds are ``PolicyInvalid``; and the pure meaning of a hook's result."""

from __future__ import annotations

import pytest

from cutter.core.errors import (
    PolicyInvalid,
    StopCode,
    StopHookFailed,
    StopHookTimeout,
    StopHookVetoed,
)
from cutter.core.hook_events import HookResult, env_for, stop_for
from cutter.core.hook_names import HookEvent
from cutter.core.policy import parse_policy

HEAD = 'admins = ["ops"]\n'


def test_hooks_parse_from_toml_and_json() -> None:
    policy = parse_policy(
        HEAD + 'hook_timeout_seconds = 3\n[hooks]\nbefore_leg_a = ["/usr/bin/check", "--strict"]\n',
        "toml",
    )
    assert policy.hooks == {HookEvent.BEFORE_LEG_A: ("/usr/bin/check", "--strict")}
    assert policy.hook_timeout_seconds == 3
    same = parse_policy(
        '{"admins": ["ops"], "hook_timeout_seconds": 3,'
        ' "hooks": {"before_leg_a": ["/usr/bin/check", "--strict"]}}',
        "json",
    )
    assert same == policy
    default = parse_policy(HEAD, "toml")
    assert (default.hooks, default.hook_timeout_seconds) == ({}, 10)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('[hooks]\nbefore_leg_b = ["/bin/true"]\n', "Invalid enum value 'before_leg_b'"),
        ("[hooks]\ngate_opened = []\n", "hooks.gate_opened must be a command of 1..32 arguments"),
        ('[hooks]\ngate_opened = "/bin/true"\n', "Expected `array`, got `str`"),
        ('[hooks]\ngate_opened = ["true"]\n', "the program 'true' is not an absolute path"),
        ('[hooks]\ngate_opened = [""]\n', "the program '' is not an absolute path"),
        ('[hooks]\ngate_opened = ["/bin/echo", "a\\u0000b"]\n', "holds a NUL"),
        ("[hooks]\ngate_opened = [" + '"/x", ' * 33 + "]\n", "1..32 arguments"),
        ('[hooks]\ngate_opened = ["/bin/echo", "' + "a" * 1025 + '"]\n', "over 1024"),
        ("hook_timeout_seconds = 0\n", "hook_timeout_seconds must be 1..120"),
        ("hook_timeout_seconds = 121\n", "hook_timeout_seconds must be 1..120"),
    ],
)
def test_bad_hooks_are_refused(text: str, why: str) -> None:
    with pytest.raises(PolicyInvalid, match="invalid policy: ") as caught:
        parse_policy(HEAD + text, "toml")
    assert why in caught.value.message


def result(**fields: object) -> HookResult:
    base: dict[str, object] = {
        "hook": "/h",
        "source": "directory",
        "event": HookEvent.BEFORE_LEG_A,
        "exit_code": 0,
        "timed_out": False,
    }
    return HookResult(**{**base, **fields})  # type: ignore[arg-type]


def test_what_a_before_hook_result_does_to_the_run() -> None:
    assert stop_for(result(), 10) is None
    vetoed = stop_for(result(exit_code=1, stdout="out\n", stderr="\n  why not \nmore"), 10)
    assert isinstance(vetoed, StopHookVetoed)
    assert vetoed.stop_code is StopCode.HOOK_VETOED
    assert vetoed.message == "before_leg_a hook /h exited 1: why not"
    silent = stop_for(result(exit_code=-9), 10)
    assert silent is not None
    assert silent.message == "before_leg_a hook /h was killed by signal 9 (it printed nothing)"
    long = stop_for(result(exit_code=1, stdout="x" * 5000), 10)
    assert long is not None
    assert len(long.message) < 300
    timed = stop_for(result(exit_code=None, timed_out=True), 2.0)
    assert isinstance(timed, StopHookTimeout)
    assert timed.message == "before_leg_a hook /h did not finish within 2s and was killed"
    failed = stop_for(result(exit_code=None, failure="Permission denied: /h"), 2.0)
    assert isinstance(failed, StopHookFailed)
    assert failed.message == "before_leg_a hook /h could not be run: Permission denied: /h"


def test_the_environment_names_only_what_applies() -> None:
    env = env_for(
        HookEvent.RUN_STOPPED,
        {"run_id": "r", "stop_code": None, "iu_count": 3, "ok": True, "nested": {"a": 1}},
    )
    assert env == {
        "CUTTER_EVENT": "run_stopped",
        "CUTTER_RUN_ID": "r",
        "CUTTER_IU_COUNT": "3",
        "CUTTER_OK": "true",
    }
