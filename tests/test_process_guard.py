"""The guard that keeps the ``subprocess`` marker honest (``tests._process_guard``):
which process starts it counts as slow, and that an unmarked test starting one is
refused while a marked one is not."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any, cast

import anyio
import pytest

from tests._process_guard import UnmarkedSubprocess, guarded, slow_process


@pytest.mark.parametrize(
    ("args", "kwargs", "slow"),
    [
        ([sys.executable, "-c", "pass"], {}, True),
        (["python3", "-m", "cutter"], {}, True),
        ("/usr/bin/python3.11 -c pass", {"shell": True}, True),
        (["/usr/lib/postgresql/16/bin/initdb", "-D", "x"], {}, True),
        (["pg_ctl", "start"], {}, True),
        (["runuser", "-u", "nobody", "true"], {}, True),
        (["true"], {"user": "nobody"}, True),
        (["anything"], {"executable": sys.executable}, True),
        (["ssh-keygen", "-Y", "verify"], {}, False),
        (["mount", "-t", "tmpfs"], {}, False),
        ("true", {"shell": True}, False),
    ],
)
def test_which_starts_count_as_slow(args: Any, kwargs: dict[str, Any], slow: bool) -> None:
    assert (slow_process(args, kwargs) is not None) is slow


@dataclass
class Node:
    """Stands in for a test item: its id and whether it carries the marker."""

    nodeid: str
    marked: bool

    def get_closest_marker(self, name: str) -> object | None:
        return object() if self.marked and name == "subprocess" else None


@pytest.mark.subprocess  # it starts a Python process itself, under a marked stand-in
def test_an_unmarked_test_may_not_start_python_and_a_marked_one_may() -> None:
    unmarked = cast(pytest.Item, Node("tests/x.py::test_unmarked", marked=False))
    original = subprocess.Popen.__init__
    with guarded(unmarked) as refused:
        with pytest.raises(UnmarkedSubprocess, match="test_unmarked"):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        assert subprocess.run(["true"], check=True).returncode == 0  # a short tool is fine
    assert len(refused) == 1
    assert subprocess.Popen.__init__ is original  # put back on the way out
    marked = cast(pytest.Item, Node("tests/x.py::test_marked", marked=True))
    with guarded(marked) as refused:
        done = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True)
    assert done.stdout == b"ok\n"
    assert refused == []


@pytest.mark.anyio
@pytest.mark.subprocess
async def test_anyio_processes_go_through_the_guard_too() -> None:
    unmarked = cast(pytest.Item, Node("tests/x.py::test_async", marked=False))
    with guarded(unmarked) as refused, pytest.raises(UnmarkedSubprocess):
        await anyio.run_process([sys.executable, "-c", "pass"])
    assert len(refused) == 1
