"""Shared fixtures: the anyio backend and a clean structlog configuration per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    """Cutter tests run on asyncio (asyncpg is asyncio-only); actors tests override this."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
