"""Snapshot tests of planning and writing against golden files in tests/golden/.

Three snapshots, each for the bundled sample ``cutter/samples/garden-charter.md``
(cut by the default ``TextDiscoverer``) and for the seeded 12-article source
(``InMemoryDiscoverer.seeded(12)``):

- ``cutplan-*``: the Manifest ``build_manifest`` produces, with its digest;
- ``cutwrite-*``: the staged IU rows ``staged_rows`` produces for run
  ``run-golden``, with the change set id;
- ``mark-*``: the candidates of the mark phase (label, kind, start, end) and the
  ``region_sha`` and ``candidate_count`` pins it adds, from a dry-run walk.

A golden file is ``msgspec.to_builtins(value)`` written by ``json.dumps(indent=2,
sort_keys=True, ensure_ascii=False)`` plus a trailing newline. IU bodies are bytes:
they appear as ``msgspec.to_builtins`` renders bytes, standard base64 with padding
(the form the canonical encoding uses, docs/ledger.md), so the golden file holds
the exact bytes whatever they contain; the tests check separately that the
decoded bodies reproduce the source.

After a deliberate change, regenerate and review::

    PYTHONPATH=. python3 -m pytest --regen-golden tests/test_snapshots.py
    git diff tests/golden/
"""

from __future__ import annotations

import base64
import difflib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import msgspec
import pytest

from cutter.core.canonical import canonical, sha256_hex
from cutter.core.kbdocs import PhaseDoc, phase_doc_id
from cutter.core.mode import Mode
from cutter.core.plan import (
    build_manifest,
    change_set_id_for,
    regions_digest,
    staged_rows,
    structural_problems,
)
from cutter.core.ports import Discoverer, Target
from cutter.core.records import IURow, IUState, Manifest, SourceVersion
from cutter.core.route import PHASES, Phase, Pin, check_inputs, check_outputs
from cutter.core.sidecar import Sidecar, amend
from cutter.core.states import RunState
from cutter.discovery import TextDiscoverer
from cutter.stores.memory.records import InMemoryKnowledgeBase
from cutter.stores.memory.seeded import InMemoryDiscoverer
from cutter.stores.memory.target import (
    InMemoryIUStore,
    InMemoryLedger,
    InMemorySources,
    StaticGrantProbe,
)
from cutter.walk.phases import BODIES, PhaseContext, PhaseOutput, Services
from cutter.walk.sandbox import sandbox
from tests._gates import UncheckedGates
from tests._harness import DOC_ID, SD_ID, SV_ID, FakeClock

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REGEN_COMMAND = "pytest --regen-golden tests/test_snapshots.py"
DIFF_LINES = 60
RUN_ID = "run-golden"


# --- the golden-file helper ---------------------------------------------------------


def render(value: object) -> str:
    """The golden text of ``value``: builtins, pretty, sorted keys, trailing newline."""
    builtins = msgspec.to_builtins(value)
    return json.dumps(builtins, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check_golden(path: Path, value: object, *, regen: bool) -> bool:
    """Compare ``value`` with the golden file at ``path``; True if it was rewritten.

    With ``regen`` the file is (re)written when it differs or is missing. Without
    it, a missing file or any difference fails the test, showing a unified diff
    (golden vs actual) cut to ``DIFF_LINES`` lines."""
    actual = render(value)
    expected = path.read_text(encoding="utf-8") if path.exists() else None
    if regen:
        if expected == actual:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
        return True
    if expected is None:
        pytest.fail(
            f"golden file {path} does not exist; create it with `{REGEN_COMMAND}`, "
            "then review it and commit it",
            pytrace=False,
        )
    if expected != actual:
        diff = list(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"golden/{path.name}",
                tofile="actual",
            )
        )
        shown = "".join(line if line.endswith("\n") else line + "\n" for line in diff[:DIFF_LINES])
        if len(diff) > DIFF_LINES:
            shown += f"... {len(diff) - DIFF_LINES} more diff lines\n"
        pytest.fail(
            f"{path.name} differs from the golden file:\n{shown}"
            f"If the change is intended, run `{REGEN_COMMAND}` "
            "and review `git diff tests/golden/`.",
            pytrace=False,
        )
    return False


Golden = Callable[[str, object], None]


@pytest.fixture
def golden(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Golden:
    regen = bool(request.config.getoption("--regen-golden"))

    def check(name: str, value: object) -> None:
        path = GOLDEN_DIR / f"{name}.json"
        if check_golden(path, value, regen=regen):
            with capsys.disabled():
                print(f"\n[--regen-golden] rewrote {path.relative_to(GOLDEN_DIR.parent.parent)}")

    return check


# --- the two sources ------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    version: SourceVersion
    data: bytes
    discoverer: Discoverer
    sources: InMemorySources


def sample_source() -> Source:
    data = resources.files("cutter").joinpath("samples/garden-charter.md").read_bytes()
    sources = InMemorySources()
    version = sources.seed("garden-charter", data, sv_id="garden-charter-v1")
    return Source("garden-charter", version, data, TextDiscoverer(), sources)


def seeded_source() -> Source:
    disc = InMemoryDiscoverer.seeded(12)
    sources = InMemorySources()
    version = sources.seed(DOC_ID, disc.source, sv_id=SV_ID, sd_id=SD_ID)
    return Source("seeded-12", version, disc.source, disc, sources)


SOURCES = {"garden-charter": sample_source, "seeded-12": seeded_source}
NAMES = list(SOURCES)


def planned(source: Source) -> Manifest:
    return build_manifest(source.version, source.data, source.discoverer.discover(source.data))


@dataclass
class DryRun:
    """Phase bodies walked in order over a sandbox of the target, as a dry run does;
    the supervisor's bookkeeping (contract checks, phase docs, pins) done by hand."""

    source: Source
    base: Target
    services: Services
    sidecar: Sidecar

    @classmethod
    def start(cls, source: Source) -> DryRun:
        clock = FakeClock()
        base = Target(sources=source.sources, ius=InMemoryIUStore(), ledger=InMemoryLedger())
        services = Services(
            target=sandbox(base),
            kb=InMemoryKnowledgeBase(),
            discoverer=source.discoverer,
            grants=StaticGrantProbe(),
            clock=clock,
            gates=UncheckedGates(),
        )
        now = clock()
        sidecar = Sidecar(
            run_id=RUN_ID,
            doc_id=source.version.doc_id,
            mode=Mode.DRY_RUN,
            started_by="operator-ann",
            created_at=now,
            updated_at=now,
            state=RunState.RUNNING,
        )
        return cls(source, base, services, sidecar)

    async def through(self, last: Phase) -> dict[Phase, PhaseOutput]:
        outputs: dict[Phase, PhaseOutput] = {}
        for ordinal, phase in enumerate(PHASES[: PHASES.index(last) + 1], start=1):
            check_inputs(phase, self.sidecar.pins)
            out = await BODIES[phase](PhaseContext(self.sidecar, self.services))
            check_outputs(phase, self.sidecar.pins, out.pins)
            kb_id = phase_doc_id(RUN_ID, phase, ordinal)
            await self.services.kb.put(
                kb_id,
                PhaseDoc(
                    run_id=RUN_ID,
                    phase=phase,
                    ordinal=ordinal,
                    mode=Mode.DRY_RUN,
                    passed_at=self.services.clock(),
                    pins_added=out.pins,
                    note=out.note,
                    candidates=out.candidates,
                    manifest=out.manifest,
                ),
            )
            self.sidecar = amend(
                self.sidecar,
                at=self.services.clock(),
                pins={**self.sidecar.pins, **out.pins},
                phases_passed=(*self.sidecar.phases_passed, phase),
                phase_docs={**self.sidecar.phase_docs, phase: kb_id},
            )
            outputs[phase] = out
        return outputs


# --- what the sample must look like, independent of the golden files -----------------

SAMPLE_LABELS = [
    "preamble",
    "Article 1. Purpose",
    "Article 2. Members",
    "Article 3. Plots",
    "Article 4. The Council",
    "Article 5. Water and Tools",
    "Article 6. Amendments",
    "trailer",
]


def assert_tiles(spans: Sequence[tuple[int, int]], size: int) -> None:
    assert spans[0][0] == 0
    assert spans[-1][1] == size
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start
    assert all(start < end for start, end in spans)


class TestCutplanSnapshot:
    @pytest.mark.parametrize("name", NAMES)
    def test_the_manifest_matches_its_golden_file(self, name: str, golden: Golden) -> None:
        manifest = planned(SOURCES[name]())
        golden(f"cutplan-{name}", {"manifest": manifest, "manifest_digest": manifest.digest})

    def test_the_sample_plans_a_preamble_six_articles_and_a_trailer_that_tile_it(self) -> None:
        source = sample_source()
        manifest = planned(source)
        assert [iu.label for iu in manifest.ius] == SAMPLE_LABELS
        assert [iu.kind for iu in manifest.ius] == ["preamble"] + ["unit"] * 6 + ["trailer"]
        assert [iu.ordinal for iu in manifest.ius] == list(range(8))
        assert_tiles([(iu.start, iu.end) for iu in manifest.ius], len(source.data))
        assert manifest.source_size == len(source.data) == 1163
        assert manifest.source_sha == sha256_hex(source.data)
        for iu in manifest.ius:
            assert iu.region_sha == sha256_hex(source.data[iu.start : iu.end])
        assert len({iu.iu_id for iu in manifest.ius}) == 8
        assert manifest.digest == sha256_hex(canonical(manifest))

    def test_the_seeded_source_plans_twelve_articles_that_tile_it(self) -> None:
        source = seeded_source()
        manifest = planned(source)
        assert [iu.label for iu in manifest.ius] == [f"Article {n}" for n in range(1, 13)]
        assert_tiles([(iu.start, iu.end) for iu in manifest.ius], len(source.data))

    @pytest.mark.anyio
    @pytest.mark.parametrize("name", NAMES)
    async def test_the_cutplan_phase_plans_the_snapshotted_manifest(self, name: str) -> None:
        source = SOURCES[name]()
        out = await DryRun.start(source).through(Phase.CUTPLAN)
        manifest = out[Phase.CUTPLAN].manifest
        assert manifest == planned(source)
        assert out[Phase.CUTPLAN].pins == {
            Pin.MANIFEST_DIGEST: planned(source).digest,
            Pin.IU_COUNT: len(planned(source).ius),
        }


def rows_of(source: Source) -> tuple[str, list[IURow]]:
    manifest = planned(source)
    change_set_id = change_set_id_for(RUN_ID, manifest.digest)
    return change_set_id, staged_rows(manifest, source.data, change_set_id)


class TestCutWriteSnapshot:
    @pytest.mark.parametrize("name", NAMES)
    def test_the_staged_rows_match_their_golden_file(self, name: str, golden: Golden) -> None:
        change_set_id, rows = rows_of(SOURCES[name]())
        golden(f"cutwrite-{name}", {"change_set_id": change_set_id, "rows": rows})

    @pytest.mark.parametrize("name", NAMES)
    def test_the_rendered_bodies_are_base64_of_bytes_that_reproduce_the_source(
        self, name: str
    ) -> None:
        source = SOURCES[name]()
        change_set_id, rows = rows_of(source)
        rendered = json.loads(render({"rows": rows}))["rows"]
        bodies = [base64.b64decode(r["body"], validate=True) for r in rendered]
        assert b"".join(bodies) == source.data
        assert all(r["state"] == "staged" for r in rendered)
        assert {r["change_set_id"] for r in rendered} == {change_set_id}
        assert structural_problems(planned(source), rows, source.data) == []

    @pytest.mark.anyio
    @pytest.mark.parametrize("name", NAMES)
    async def test_cut_leg_a_stages_the_snapshotted_rows_in_the_sandbox_only(
        self, name: str
    ) -> None:
        source = SOURCES[name]()
        run = DryRun.start(source)
        out = await run.through(Phase.CUT_LEG_A)
        change_set_id, rows = rows_of(source)
        assert out[Phase.CUT_LEG_A].pins == {Pin.CHANGE_SET_ID: change_set_id}
        written = await run.services.target.ius.change_set(change_set_id)
        assert written == rows
        assert all(r.state is IUState.STAGED for r in written)
        # A dry run: the target itself holds nothing.
        assert await run.base.ius.change_set(change_set_id) == []
        assert await run.base.ius.rows(source.version.doc_id) == []


class TestDryRunMarkSnapshot:
    @pytest.mark.anyio
    @pytest.mark.parametrize("name", NAMES)
    async def test_the_mark_phase_matches_its_golden_file(self, name: str, golden: Golden) -> None:
        source = SOURCES[name]()
        out = (await DryRun.start(source).through(Phase.MARK))[Phase.MARK]
        golden(
            f"mark-{name}",
            {
                "candidate_count": out.pins[Pin.CANDIDATE_COUNT],
                "candidates": [
                    {"label": c.label, "kind": c.kind, "start": c.start, "end": c.end}
                    for c in out.candidates
                ],
                "region_sha": out.pins[Pin.REGION_SHA],
            },
        )

    @pytest.mark.anyio
    async def test_the_sample_marks_eight_tiling_candidates_pinned_by_region_sha(self) -> None:
        source = sample_source()
        out = (await DryRun.start(source).through(Phase.MARK))[Phase.MARK]
        assert [c.label for c in out.candidates] == SAMPLE_LABELS
        assert_tiles([(c.start, c.end) for c in out.candidates], len(source.data))
        assert out.pins[Pin.CANDIDATE_COUNT] == 8
        assert out.pins[Pin.REGION_SHA] == regions_digest(out.candidates)
        assert out.pins[Pin.REGION_SHA] == sha256_hex(canonical(out.candidates))
        text = source.data.decode("utf-8")
        for c in out.candidates[1:-1]:
            assert source.data[c.start : c.end].decode("utf-8").startswith(c.label + "\n")
        assert source.data[out.candidates[-1].start :].startswith(b"Signed for the assembly")
        assert text[: out.candidates[0].end].startswith("# Charter of the Riverside")


class TestTheGoldenHelper:
    def test_a_missing_golden_file_fails_saying_how_to_create_it(self, tmp_path: Path) -> None:
        with pytest.raises(pytest.fail.Exception, match=re.escape(REGEN_COMMAND)):
            check_golden(tmp_path / "absent.json", {"a": 1}, regen=False)
        assert not (tmp_path / "absent.json").exists()

    def test_regen_writes_pretty_sorted_json_with_a_trailing_newline(self, tmp_path: Path) -> None:
        path = tmp_path / "golden" / "value.json"
        value = {"b": [1, 2], "a": "Điều", "c": b"\x00\xff"}
        assert check_golden(path, value, regen=True) is True
        assert (
            path.read_bytes()
            == ('{\n  "a": "Điều",\n  "b": [\n    1,\n    2\n  ],\n  "c": "AP8="\n}\n').encode()
        )
        assert check_golden(path, value, regen=False) is False  # now it passes
        assert check_golden(path, value, regen=True) is False  # unchanged: not rewritten

    def test_a_difference_fails_with_a_unified_diff_of_golden_against_actual(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "value.json"
        check_golden(path, {"start": 0, "end": 174}, regen=True)
        with pytest.raises(pytest.fail.Exception) as failed:
            check_golden(path, {"start": 0, "end": 175}, regen=False)
        message = str(failed.value)
        assert "--- golden/value.json\n+++ actual\n" in message
        assert '-  "end": 174,\n+  "end": 175,\n' in message
        assert "--regen-golden" in message

    def test_a_long_diff_is_cut_to_sixty_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "long.json"
        check_golden(path, list(range(500)), regen=True)
        with pytest.raises(pytest.fail.Exception) as failed:
            check_golden(path, list(range(1000, 1500)), regen=False)
        message = str(failed.value)
        assert "more diff lines" in message
        assert message.count("\n") < DIFF_LINES + 10
