"""Shared fixtures and policy: the anyio backend, a clean structlog configuration per
test, Hypothesis profiles, and under CI (``CI=true``) no skip that nobody declared.

Hypothesis: the "ci" profile, loaded when ``CI=true``, is derandomised (each test's
examples are fixed by its own source, so a CI run can neither find nor lose a new
failure by luck) and keeps no example database; an input that ever failed is
pinned with ``@example`` beside its test. The "dev" profile, loaded otherwise,
draws new examples each run and remembers failures in ``.hypothesis/``.
``HYPOTHESIS_PROFILE`` chooses one explicitly. Neither profile has a deadline or
the too-slow health check: both are timings, which a loaded machine breaks.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings

import cutter.core.mode
from cutter.core.route import Gate
from tests._harness import Paused, at_gate, build_runner, close_databases
from tests._process_guard import guarded, require_marker
from tests.inputs import under_ci

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if under_ci() else "dev"))


@pytest.fixture
def anyio_backend() -> str:
    """Cutter tests run on asyncio (asyncpg is asyncio-only); actors tests override this."""
    return "asyncio"


async def _paused(tmp_path: Path, gate: Gate) -> AsyncIterator[Paused]:
    rig = build_runner(tmp_path)
    async with rig.runner:
        yield Paused(rig, await at_gate(rig, gate))


@pytest.fixture
async def rig_at_sg1(tmp_path: Path) -> AsyncIterator[Paused]:
    """A runner (running) on the harness's stores with a dry run of DOC_ID paused at
    SG_1 (``tests._harness.at_gate``); the runner stops when the test ends."""
    async for paused in _paused(tmp_path, Gate.SG_1):
        yield paused


@pytest.fixture
async def rig_at_sg2(tmp_path: Path) -> AsyncIterator[Paused]:
    """As ``rig_at_sg1``, the run approved at SG_1 and paused at SG_2."""
    async for paused in _paused(tmp_path, Gate.SG_2):
        yield paused


@pytest.fixture(autouse=True)
def _subprocess_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that starts a Python, PostgreSQL or other-user process carries the
    ``subprocess`` marker (``tests._process_guard``): the quick loop starts none."""
    if "pg_server" in request.fixturenames:
        require_marker(request.node, "uses PostgreSQL")
    with guarded(request.node) as refused:
        yield
    if refused:
        pytest.fail(refused[0], pytrace=False)


@pytest.fixture(autouse=True)
def _close_harness_databases() -> Iterator[None]:
    """Close the SQLite databases ``tests._harness`` opened during the test."""
    yield
    close_databases()


@pytest.fixture(autouse=True)
def _execution_flag_restored() -> Iterator[None]:
    """Leave the process-wide execution switch as the test found it: a command run
    in-process (``cutter demo --live`` through click's runner) turns it on for good."""
    before = cutter.core.mode.__execution_enabled__
    yield
    cutter.core.mode.__execution_enabled__ = before


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ from the current output "
        "instead of comparing against them (review the diff before committing)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "may_skip: the test may skip for a reason that is not a missing input (a "
        "condition of the host or of the configuration); under CI=true any other "
        "skip fails the run",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI, a skip the test did not declare with ``may_skip`` is a failure: a
    missing input (a corpus file, a script, a server binary) must not go green."""
    report = yield
    if (
        under_ci()
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("may_skip") is None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true, which allows no undeclared skip: {reason}\n"
            "(provide the input, or mark a skip that is not a missing input may_skip)"
        )
    return report
