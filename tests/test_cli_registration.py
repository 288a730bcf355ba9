"""One registration style for the ``cutter`` subcommands: each module of commands
defines them at module level and lists them in ``COMMANDS``; ``cutter.cli.main`` adds
every list to the group, and nothing else attaches a command."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import click

from cutter.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
CLI_MODULES = sorted(p for p in (ROOT / "cutter" / "cli").glob("*.py") if p.stem != "__init__")
# Commands of their own, not subcommands: ``scripts/approve`` runs reviewer_main; main
# is the group.
STANDALONE = {"cutter.cli.approve": {"reviewer_main"}, "cutter.cli.main": {"main"}}


def attaching_calls(path: Path) -> list[str]:
    """``register`` functions, and decorators or calls that attach a command to a group
    (``@main.command``, ``@group.command``, ``group.add_command``) outside the table."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == "register":
            found.append("def register")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in {"main", "group"}
            and node.attr in {"command", "group", "add_command"}
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_module_attaches_commands_its_own_way() -> None:
    offenders = {p.name: calls for p in CLI_MODULES if (calls := attaching_calls(p))}
    # cutter/cli/main.py adds the table once, in one loop.
    assert offenders == {"main.py": ["main.add_command"]}


def test_the_group_is_the_union_of_the_tables() -> None:
    tabled: list[str] = []
    for path in CLI_MODULES:
        module = importlib.import_module(f"cutter.cli.{path.stem}")
        commands = getattr(module, "COMMANDS", ())
        tabled += [c.name for c in commands if c.name is not None]
        defined = {
            name
            for name, value in vars(module).items()
            if isinstance(value, click.Command)
            and getattr(value.callback, "__module__", None) == module.__name__
        }
        listed = {name for name, value in vars(module).items() if value in commands}
        loose = defined - listed - STANDALONE.get(module.__name__, set())
        # subcommands of a tabled group (db migrate, kill-switch engage) are its own
        nested = {
            name
            for name in loose
            if any(
                isinstance(group, click.Group) and vars(module)[name] in group.commands.values()
                for group in commands
            )
        }
        assert loose == nested, f"{module.__name__} defines commands it does not list"
    assert sorted(tabled) == sorted(main.commands)
    assert len(tabled) == len(set(tabled))
