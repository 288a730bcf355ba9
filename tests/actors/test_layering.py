"""actors: the package stays generic (no application imports) and backend-neutral."""

from __future__ import annotations

import ast
from pathlib import Path

import actors

PACKAGE = Path(actors.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top_level(name: str) -> str:
    return name.split(".", 1)[0]


def test_the_walk_sees_every_module() -> None:
    assert {p.name for p in MODULES} >= {"__init__.py", "cell.py", "ref.py", "system.py"}
    assert "anyio" in {top_level(n) for n in imported_modules(PACKAGE / "cell.py")}


def test_actors_never_imports_cutter() -> None:
    offenders = {
        path.name: sorted(n for n in imported_modules(path) if top_level(n) == "cutter")
        for path in MODULES
    }
    assert {name: found for name, found in offenders.items() if found} == {}


# The one backend-specific module: a waiting task's slot is a loop future on asyncio
# (and a parked task on trio, reached through sys.modules so trio stays optional),
# because anyio's portable slot costs more than the rest of the round trip.
BACKEND_FAST_PATHS = {"wake.py": ["asyncio"]}


def test_actors_never_imports_asyncio_or_trio_directly() -> None:
    offenders = {
        path.name: sorted(n for n in imported_modules(path) if top_level(n) in {"asyncio", "trio"})
        for path in MODULES
    }
    assert {name: found for name, found in offenders.items() if found} == BACKEND_FAST_PATHS


def test_public_surface() -> None:
    assert actors.__all__ == [
        "MAILBOX_SIZE",
        "Actor",
        "ActorCrashed",
        "ActorError",
        "ActorRef",
        "ActorStopped",
        "ActorSystem",
        "AskTimeout",
        "ChildFailed",
        "Context",
        "Later",
        "Request",
    ]
    assert actors.MAILBOX_SIZE == 16
    assert (PACKAGE / "py.typed").is_file()
    for error in (actors.ActorStopped, actors.ActorCrashed, actors.AskTimeout):
        assert issubclass(error, actors.ActorError)
