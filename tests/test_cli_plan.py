"""``cutter plan FILE``: an operator's check of a document before a cut."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cutter.cli.main import main
from tests.discovery.corpus import CORPUS, document

SAMPLE = Path(__file__).resolve().parents[1] / "cutter" / "samples" / "garden-charter.md"


def corpus(name: str) -> Path:
    document(name)  # fails under CI when the corpus is missing, else skips
    return CORPUS / name


def plan(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["plan", "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_the_json_plan_tiles_the_file_and_names_each_unit() -> None:
    report = plan(str(SAMPLE))
    ius = report["manifest"]["ius"]  # type: ignore[index]
    data = SAMPLE.read_bytes()
    assert report["size"] == len(data)
    assert b"".join(data[iu["start"] : iu["end"]] for iu in ius) == data
    assert [iu["kind"] for iu in ius] == ["preamble", *["unit"] * 6, "trailer"]
    assert [iu["number"] for iu in ius if iu["kind"] == "unit"] == ["1", "2", "3", "4", "5", "6"]


def test_a_real_statute_plans_to_its_ground_truth_with_structure() -> None:
    report = plan(str(corpus("vn-bo-luat-dan-su-2015.txt")))
    units = [iu for iu in report["manifest"]["ius"] if iu["kind"] == "unit"]  # type: ignore[index]
    assert len(units) == 689
    assert units[0]["label"] == "Điều 1. Phạm vi điều chỉnh"
    assert units[0]["path"][:2] == ["Phần thứ nhất", "Chương I"]
    assert units[-1]["number"] == "689"
    assert report["profile"] == "vietnamese"


def test_the_table_shows_units_and_warnings() -> None:
    result = CliRunner().invoke(
        main, ["plan", str(corpus("fr-constitution-1958.txt"))], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    assert "ARTICLE 89." in result.stdout
    assert "warning:" in result.stdout  # this edition repeats and skips article numbers


def test_there_is_no_profile_to_choose() -> None:
    # A run cannot be given a profile, so neither can the plan a reviewer reads.
    result = CliRunner().invoke(main, ["plan", "--profile", "plain", str(SAMPLE)])
    assert result.exit_code == 2
    assert "no such option" in result.output.lower()
    assert "--profile" in result.output
