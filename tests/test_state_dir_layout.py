"""The state directory's layout has one home (``cutter.core.state_dir.StateDir``): no other
module of the program or the benchmarks spells one of its names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cutter.core.state_dir import DEFAULT, StateDir

ROOT = Path(__file__).resolve().parent.parent
# (The old layout's names, "kb" and "runs", are ordinary words elsewhere.)
NAMES = (StateDir.DATABASE, StateDir.OWNER_LOCK, StateDir.SOCKET)


def spelled_names(path: Path) -> list[str]:
    """String constants that are a layout name, or a path ending in one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [n for n in NAMES if node.value == n or node.value.endswith("/" + n)]
    return found


def test_the_layout_is_the_documented_one() -> None:
    state = StateDir(Path("/srv/cutter"))
    assert state.database == Path("/srv/cutter/cutter.sqlite3")
    assert state.owner_lock == Path("/srv/cutter/owner.pid")
    assert state.socket == Path("/srv/cutter/daemon.sock")
    assert [p.name for p in state.old_layout] == ["kb", "runs", "target", "kill-switch"]
    assert DEFAULT.socket == Path(".cutter/daemon.sock")


@pytest.mark.parametrize("top", ["cutter", "scripts"])
def test_no_other_module_spells_the_layout(top: str) -> None:
    home = ROOT / "cutter" / "core" / "state_dir.py"
    spelled = {
        str(path.relative_to(ROOT)): names
        for path in sorted((ROOT / top).rglob("*.py"))
        if path != home and (names := spelled_names(path))
    }
    assert spelled == {}
