"""The architecture stays visible: each layer imports only what it may.

    core (+ discovery)   values and pure decisions: msgspec and the standard library's
                         pure parts; no anyio, asyncio, trio, asyncpg, sqlite3, structlog
                         or actors, not even through another cutter module
    runtime              logging, off-loop work, failpoints: core and itself
    stores/<adapter>     memory, sqlite, pg: core, runtime and the shared stores modules;
                         never another adapter, never the walk or an edge
    walk                 the run's actors and the runner: core, runtime, actors; the
                         dry-run sandbox alone may use the in-memory adapter
    assembly             builds a RunnerConfig from stores: anything but the edges
    daemon, web, cli     the edges: anything below; only the CLI imports the CLI

The rules are checked on the transitive import graph (an import inside a function
counts), so a forbidden dependency cannot hide behind an allowed module.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMPURE_ROOTS = frozenset({"anyio", "asyncio", "trio", "asyncpg", "sqlite3", "structlog", "actors"})
ADAPTERS = ("cutter.stores.memory", "cutter.stores.sqlite", "cutter.stores.pg")
PURE = ("cutter.core", "cutter.discovery")

# What each layer's modules may import directly (cutter packages; a prefix covers
# its subpackages). The root package (cutter/__init__, __main__) is the public API
# and may import anything.
ALLOWED: dict[str, tuple[str, ...]] = {
    "cutter.core": PURE,
    "cutter.discovery": PURE,
    "cutter.runtime": (*PURE, "cutter.runtime"),
    "cutter.stores": (*PURE, "cutter.runtime", "cutter.stores"),
    "cutter.walk": (*PURE, "cutter.runtime", "cutter.walk"),
    "cutter.assembly": (*PURE, "cutter.runtime", "cutter.stores", "cutter.walk", "cutter.assembly"),
    "cutter.daemon": (
        *PURE,
        *("cutter.runtime", "cutter.stores", "cutter.walk", "cutter.assembly"),
        *("cutter.daemon", "cutter.web"),
    ),
    "cutter.web": (
        *PURE,
        *("cutter.runtime", "cutter.stores", "cutter.walk", "cutter.assembly"),
        *("cutter.daemon", "cutter.web"),
    ),
    "cutter.cli": ("cutter",),
}
# Declared exceptions, each with its reason.
EXCEPTIONS: dict[str, tuple[str, ...]] = {
    # A dry run writes into an in-memory sandbox over the real target, by design.
    "cutter.walk.sandbox": ("cutter.stores.memory.target",),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Every module of ``package`` under ``root`` -> the names it imports (absolute,
    resolved to a module where ``from package import module`` names one)."""
    files = sorted((root / package).rglob("*.py"))
    modules = {module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
        graph[name] = found
    return graph


def closure(graph: Mapping[str, set[str]], start: str) -> set[str]:
    """``start``'s transitive imports (third-party names included, not followed)."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(graph.get(name, ()))
    return seen


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Every broken rule, one line each (empty when the layering holds)."""
    found: list[str] = []
    for module, imports in sorted(graph.items()):
        layer = layer_of(module)
        if layer is None:
            continue  # the root package: the public API
        allowed = ALLOWED[layer]
        for name in sorted(imports):
            if name.split(".")[0] != "cutter" or name == "cutter":
                continue
            if not under(name, allowed) and name not in EXCEPTIONS.get(module, ()):
                found.append(f"{module} imports {name} ({layer} may not)")
        reach = closure(graph, module)
        if under(module, PURE):
            impure = sorted(n for n in reach if n.split(".")[0] in IMPURE_ROOTS)
            if impure:
                found.append(f"{module} reaches {', '.join(impure)} (pure modules may not)")
        own = next((a for a in ADAPTERS if under(module, (a,))), None)
        if own is not None:
            others = sorted(n for n in reach if under(n, set(ADAPTERS) - {own}))
            if others:
                found.append(f"{module} reaches {', '.join(others)} (another adapter)")
    return found


def test_the_layers_hold() -> None:
    graph = import_graph(ROOT, "cutter")
    assert {layer_of(m) for m in graph} >= set(ALLOWED) - {"cutter.stores"}
    assert violations(graph) == []


def test_every_module_is_in_a_layer() -> None:
    graph = import_graph(ROOT, "cutter")
    assert sorted(m for m in graph if layer_of(m) is None) == ["cutter", "cutter.__main__"]


def write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


GOOD = {
    "cutter/__init__.py": "",
    "cutter/core/__init__.py": "",
    "cutter/core/values.py": "import msgspec\n",
    "cutter/core/rules.py": "from cutter.core import values\n",
    "cutter/runtime/__init__.py": "",
    "cutter/runtime/logs.py": "import structlog\nfrom cutter.core.values import X\n",
    "cutter/stores/__init__.py": "",
    "cutter/stores/sqlite/__init__.py": "",
    "cutter/stores/sqlite/target.py": "import sqlite3\nfrom cutter.runtime import logs\n",
    "cutter/stores/pg/__init__.py": "",
    "cutter/stores/pg/target.py": "import asyncpg\nfrom cutter.core.rules import f\n",
    "cutter/walk/__init__.py": "",
    "cutter/walk/runner.py": "import actors\nfrom cutter.core import rules\n",
}


def test_the_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    assert violations(import_graph(tmp_path, "cutter")) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param(
            "cutter/core/rules.py",
            "import anyio\n",
            "cutter.core.rules reaches anyio",
            id="pure imports anyio",
        ),
        pytest.param(
            "cutter/core/rules.py",
            "def f():\n    import asyncpg\n",
            "cutter.core.rules reaches asyncpg",
            id="pure imports asyncpg in a function",
        ),
        pytest.param(
            "cutter/core/values.py",
            "from actors import Actor\n",
            "cutter.core.rules reaches actors",
            id="pure reaches actors through another pure module",
        ),
        pytest.param(
            "cutter/core/values.py",
            "from cutter.runtime import logs\n",
            "cutter.core.values imports cutter.runtime.logs (cutter.core may not)",
            id="pure imports the runtime",
        ),
        pytest.param(
            "cutter/stores/sqlite/target.py",
            "from cutter.stores.pg import target\n",
            "cutter.stores.sqlite.target reaches cutter.stores.pg.target (another adapter)",
            id="adapter imports another adapter",
        ),
        pytest.param(
            "cutter/stores/pg/target.py",
            "from cutter.walk import runner\n",
            "cutter.stores.pg.target imports cutter.walk.runner (cutter.stores may not)",
            id="adapter imports the walk",
        ),
        pytest.param(
            "cutter/walk/runner.py",
            "from cutter.stores.sqlite.target import SqliteIUStore\n",
            "cutter.walk.runner imports cutter.stores.sqlite.target (cutter.walk may not)",
            id="the walk imports an adapter",
        ),
    ],
)
def test_the_checker_names_each_broken_rule(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    write(tmp_path, {**GOOD, name: text})
    assert any(line.startswith(expected) for line in violations(import_graph(tmp_path, "cutter")))


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
    assert cutter.__execution_enabled__ is False


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
# purpose (cutter.stores.pg.migrate, cutter.stores.sqlite.migrate), never imported together.
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
