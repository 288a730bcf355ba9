"""Discovery on the largest corpus document, as every run and ``cutter plan`` call
it (``discover(data)``: the profile inferred, then the cut), against one
``re.finditer`` pass of the inferred profile's unit pattern over the same
(decoded) text."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.common import CORPUS, Figure, compared, measured


def largest_corpus_document() -> Path:
    files = [p for p in CORPUS.iterdir() if p.name != "SOURCES.md"]
    return max(files, key=lambda p: p.stat().st_size)


def run(repetitions: int, quick: bool) -> Figure:
    from cutter.discovery import discover, infer_profile

    path = largest_corpus_document()
    data = path.read_bytes()
    pattern = re.compile(infer_profile(data).unit, re.MULTILINE)
    megabytes = len(data) / 1e6

    def floor() -> object:
        return sum(1 for _ in pattern.finditer(data.decode("utf-8", "surrogateescape")))

    def work() -> object:
        return discover(data)

    found = discover(data)
    units = sum(1 for c in found.candidates if c.kind == "unit")
    wall, cpu = measured(work, repetitions)
    floor_wall, floor_cpu = measured(floor, repetitions)
    return compared(
        "discovery",
        "MB/s",
        [megabytes / t for t in wall],
        [megabytes / t for t in floor_wall],
        target=">= 0.5x the floor's MB/s",
        limit=0.5,
        higher_is_better=True,
        note=f"{path.name}, {len(data):,} bytes, {units} units, profile {found.profile}",
        cpu=[megabytes / t for t in cpu],
        floor_cpu=[megabytes / t for t in floor_cpu],
    )
