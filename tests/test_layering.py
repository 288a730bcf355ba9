"""The architecture stays visible: public APIs are deliberate, decisions are pure."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Values and decisions: plain functions over frozen values, no I/O framework.
PURE_MODULES = [
    "anchors",
    "approvals",
    "canonical",
    "codec",
    "drift",
    "errors",
    "ids",
    "kbdocs",
    "ledger",
    "mode",
    "plan",
    "policy",
    "principals",
    "records",
    "review",
    "sidecar",
    "signing",
    "states",
    "transitions",
    "walk",
]
IMPURE_ROOTS = {"anyio", "asyncpg", "asyncio", "trio", "actors", "structlog"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("name", PURE_MODULES)
def test_decision_modules_import_no_io_framework(name: str) -> None:
    roots = imported_roots(ROOT / "cutter" / f"{name}.py")
    assert not roots & IMPURE_ROOTS, f"cutter/{name}.py imports {sorted(roots & IMPURE_ROOTS)}"


@pytest.mark.parametrize("package", ["cutter", "actors"])
def test_public_api_is_sorted_and_real(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    # isort-style, as ruff's RUF022 keeps it: CONSTANTS first, then the rest.
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert getattr(module, name) is not None


def test_cutter_exports_the_seed_surface() -> None:
    import cutter

    for name in [
        "Mode",
        "Runner",
        "StopApprovalRequired",
        "ApprovalConsumedAlready",
        "ProductionExecutionNotAuthorized",
        "StopCode",
        "RunState",
    ]:
        assert name in cutter.__all__
    assert cutter.mode.__execution_enabled__ is False
    assert cutter.__execution_enabled__ is False  # the design's name, read from mode


def imports_package_root(path: Path) -> bool:
    """``import cutter`` or ``from cutter import x``: a module that reaches the package
    root runs ``cutter/__init__`` (the runner, the stores) to get one name."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name == "cutter" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "cutter":
            return True
    return False


def test_no_module_of_the_package_imports_its_root() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "cutter").rglob("*.py"))
        if imports_package_root(path)
    ]
    assert offenders == []


# Two adapters of one kind, each with its own migration runner: the same name on
# purpose (cutter.pg.migrate, cutter.sqlite.migrate), never imported together.
SHARED_CLASS_NAMES = {"Migration"}


def test_each_public_class_name_has_one_meaning() -> None:
    """A name defined in two modules (two ``Target``s, two ``ShuttingDown``s) reads as
    one thing and is two; the import decides which, silently."""
    homes: dict[str, list[str]] = {}
    for path in sorted((ROOT / "cutter").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                homes.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    twice = {n: h for n, h in homes.items() if len(h) > 1 and n not in SHARED_CLASS_NAMES}
    assert twice == {}
