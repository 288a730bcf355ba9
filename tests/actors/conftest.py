"""The actor runtime is backend-agnostic: every test here runs on asyncio and on trio."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _collect_leaks() -> Iterator[None]:
    """Collect garbage inside the test, so an unclosed stream's ResourceWarning fails it."""
    yield
    gc.collect()
