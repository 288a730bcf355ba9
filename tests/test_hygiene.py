"""The suite's own rules (tests/conftest.py, tests/inputs.py): under CI a skip nobody
declared fails the run, a missing input fails, Hypothesis draws fixed examples; and
every corpus document the tests read is in the tree, as SOURCES.md describes it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.discovery.corpus import ALL, CORPUS
from tests.inputs import under_ci

ROOT = Path(__file__).resolve().parents[1]

# One test of each kind a run can meet, run by a pytest of its own with the
# project's conftest as a plugin.
PROBE = """
from pathlib import Path

import pytest

from tests.inputs import input_file


def test_passes() -> None:
    assert True


def test_skips_undeclared() -> None:
    pytest.skip("some reason nobody declared")


@pytest.mark.skipif(True, reason="a condition nobody declared")
def test_skipif_undeclared() -> None:
    pass


@pytest.mark.may_skip
@pytest.mark.skipif(True, reason="a condition of the host")
def test_skip_declared() -> None:
    pass


def test_reads_a_missing_input() -> None:
    input_file(Path("no-such-input.txt"))


@pytest.mark.xfail(reason="known", strict=True)
def test_xfails() -> None:
    raise AssertionError
"""


def run_probe(tmp_path: Path, *, ci: bool) -> dict[str, str]:
    """Each probe test's outcome, as pytest -v reports it."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env["PYTHONPATH"] = str(ROOT)
    if ci:
        env["CI"] = "true"
    plugins = ["-p", "tests.conftest", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-v", "test_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    outcomes: dict[str, str] = {}
    for line in result.stdout.splitlines():  # "test_probe.py::test_x PASSED   [ 16%]"
        node, _, rest = line.partition(" ")
        if node.startswith("test_probe.py::") and rest:
            outcomes.setdefault(node.split("::")[1], rest.split()[0])
    return outcomes


@pytest.mark.subprocess
def test_under_ci_only_a_declared_skip_stays_a_skip(tmp_path: Path) -> None:
    assert run_probe(tmp_path, ci=True) == {
        "test_passes": "PASSED",
        "test_skips_undeclared": "FAILED",
        "test_skipif_undeclared": "ERROR",  # a skip in setup fails as a setup error
        "test_skip_declared": "SKIPPED",
        "test_reads_a_missing_input": "FAILED",
        "test_xfails": "XFAIL",
    }


@pytest.mark.subprocess
def test_outside_ci_skips_are_skips(tmp_path: Path) -> None:
    outcomes = run_probe(tmp_path, ci=False)
    assert outcomes.pop("test_passes") == "PASSED"
    assert outcomes.pop("test_xfails") == "XFAIL"
    assert set(outcomes.values()) == {"SKIPPED"}
    assert len(outcomes) == 4


def test_hypothesis_is_derandomised_under_ci_and_has_no_timing() -> None:
    profile = settings.default
    assert profile.derandomize is under_ci()
    assert (profile.database is None) is under_ci()
    assert profile.deadline is None


def test_every_corpus_document_is_in_the_tree_with_its_recorded_sha256() -> None:
    sources = (CORPUS / "SOURCES.md").read_text()
    assert CORPUS == ROOT / "tests" / "corpus"
    for name in ALL:
        data = (CORPUS / name).read_bytes()
        assert f"`{name}`" in sources
        assert f"sha256: `{hashlib.sha256(data).hexdigest()}`" in sources, name
    assert "MIT License" in (CORPUS / "openjs-cpc-charter.LICENSE").read_text()


@pytest.mark.parametrize("reader", ["tests", "scripts"])
def test_no_test_or_benchmark_reads_beside_the_checkout(reader: str) -> None:
    for path in (ROOT / reader).rglob("*.py"):
        if path == Path(__file__).resolve():
            continue  # names what it looks for
        text = path.read_text()
        beside = "shared"  # the folder beside the checkout, which a clone alone lacks
        assert f'"{beside}"' not in text, path
        assert f"../{beside}" not in text, path
