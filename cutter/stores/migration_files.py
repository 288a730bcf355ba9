"""Which migrations a database adapter ships: ``migrations/NNNN_name.sql`` in its
package, versions 1, 2, 3 … without gaps. One rule for every database adapter; how a
migration is applied is each adapter's own (``cutter.stores.pg.migrate``,
``cutter.stores.sqlite.migrate``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class MigrationFile:
    version: int
    name: str
    file_name: str


def ordered(file_names: Iterable[str]) -> list[MigrationFile]:
    """The migrations among ``file_names`` (other names are not migrations), in version
    order; ``RuntimeError`` (a packaging bug, not bad input) unless the versions run
    1, 2, 3 … without gaps or repeats."""
    found = [
        MigrationFile(int(match[1]), match[2], match[0])
        for match in map(_NAME.fullmatch, file_names)
        if match
    ]
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError("migration versions must run 1, 2, 3 … without gaps")
    return found


def read_migrations(package: str) -> list[tuple[MigrationFile, str]]:
    """Every migration of ``package``'s ``migrations`` folder with its SQL text, in order."""
    folder = resources.files(package).joinpath("migrations")
    return [
        (m, folder.joinpath(m.file_name).read_text(encoding="utf-8"))
        for m in ordered(entry.name for entry in folder.iterdir())
    ]
