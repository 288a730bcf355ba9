"""The one rule for which migrations a database adapter ships (cutter.stores.migration_files)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from cutter.stores.migration_files import ordered, read_migrations
from cutter.stores.pg.migrate import migrations as pg_migrations
from cutter.stores.sqlite.migrate import migrations as sqlite_migrations


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], []),
        (["0002_b.sql", "0001_a.sql"], [(1, "a"), (2, "b")]),
        (
            ["README.md", "0001_a.sql", "0002_B.sql", "1_x.sql", "0002_b.sql.orig", "0002_b.sql"],
            [(1, "a"), (2, "b")],
        ),
    ],
)
def test_migrations_are_the_matching_file_names_in_version_order(
    names: list[str], expected: list[tuple[int, str]]
) -> None:
    assert [(m.version, m.name) for m in ordered(names)] == expected


@pytest.mark.parametrize(
    "names",
    [
        ["0002_b.sql"],  # no version 1
        ["0001_a.sql", "0003_c.sql"],  # a gap
        ["0001_a.sql", "0001_again.sql"],  # a version twice
    ],
)
def test_versions_with_a_gap_or_a_repeat_are_refused(names: list[str]) -> None:
    with pytest.raises(RuntimeError, match="without gaps"):
        ordered(names)


@pytest.mark.parametrize(
    ("package", "adapter"),
    [("cutter.stores.pg", pg_migrations), ("cutter.stores.sqlite", sqlite_migrations)],
)
def test_each_database_adapter_ships_its_migrations_by_the_one_rule(
    package: str, adapter: Callable[[], Sequence[Any]]
) -> None:
    shipped = read_migrations(package)
    assert shipped[0][0].version == 1
    assert [(m.version, m.name) for m in adapter()] == [(m.version, m.name) for m, _ in shipped]
    assert all(sql.strip() for _, sql in shipped)
