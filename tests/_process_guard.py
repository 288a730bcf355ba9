"""Keeps the ``subprocess`` marker honest: a test that starts a slow process — a
Python interpreter (a daemon, a CLI, a child that is killed, anyio's worker
processes), a PostgreSQL server tool, or anything as another OS user — must carry
``@pytest.mark.subprocess``, so ``pytest -m "not subprocess"`` is a quick loop
that really starts none.

Every process start goes through ``subprocess.Popen`` (``subprocess.run``, asyncio's
and trio's subprocesses, ``anyio.open_process``/``run_process``/``to_process``), so
the guard wraps ``Popen.__init__`` for the length of each unmarked test and refuses
such a start there, naming the test. Short tools (``ssh-keygen``, ``mount``) are not
what makes a loop slow and stay allowed. A test reaching PostgreSQL through the
session's server (started once, maybe by another test) is checked where it takes a
database (``tests/pg/conftest.py`` calls ``require_marker``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

MARKER = "subprocess"
PG_TOOLS = frozenset({"initdb", "pg_ctl", "postgres", "pg_ctlcluster", "psql", "pg_dump"})
USER_SWITCHES = frozenset({"su", "sudo", "runuser", "setpriv"})


class UnmarkedSubprocess(AssertionError):
    """A test without the ``subprocess`` marker started a slow process."""


def require_marker(node: pytest.Item, what: str) -> None:
    if node.get_closest_marker(MARKER) is None:
        raise UnmarkedSubprocess(
            f"{node.nodeid} {what} but is not marked @pytest.mark.{MARKER} "
            '(pytest -m "not subprocess" would run it)'
        )


def slow_process(args: Any, kwargs: dict[str, Any]) -> str | None:
    """What makes this start a slow one (None: a short tool)."""
    if kwargs.get("user") is not None or kwargs.get("group") is not None:
        return "starts a process as another OS user"
    program = kwargs.get("executable") or (
        args if isinstance(args, str | bytes | os.PathLike) else next(iter(args), "")
    )
    text = os.fsdecode(program)
    name = os.path.basename(text.split()[0] if isinstance(args, str) and text else text)
    if text == sys.executable or name.startswith("python"):
        return "starts a Python process"
    if name in PG_TOOLS:
        return f"starts PostgreSQL's {name}"
    if name in USER_SWITCHES:
        return f"starts {name} (another OS user)"
    return None


@contextmanager
def guarded(node: pytest.Item) -> Iterator[list[str]]:
    """Within: an unmarked ``node`` that starts a slow process is refused; the
    refusals are listed (a test might swallow the exception)."""
    refused: list[str] = []
    if node.get_closest_marker(MARKER) is not None:
        yield refused
        return
    original = subprocess.Popen.__init__

    def init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        what = slow_process(args, kwargs)
        if what is not None:
            try:
                require_marker(node, what)
            except UnmarkedSubprocess as exc:
                refused.append(str(exc))
                raise
        original(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    try:
        yield refused
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]
