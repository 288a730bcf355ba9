"""Files a test reads as its input: present, or the test does not pass.

Use ``input_file(path)`` wherever a test needs a file it did not write itself.
A missing file fails the test under CI (``CI=true``) and skips it, naming the
path, elsewhere. tests/conftest.py backs this up: under CI any skip of a test
not marked ``may_skip`` fails the run, so a checkout that lacks an input can
never go green by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing_input(what: str) -> NoReturn:
    """Fail (under CI) or skip (elsewhere) because ``what`` is missing."""
    message = f"missing input: {what}"
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def input_file(path: Path) -> Path:
    """``path``, which must be a file."""
    if not path.is_file():
        missing_input(str(path))
    return path
