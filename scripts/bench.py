#!/usr/bin/env python3
"""iu-cutter benchmarks: each figure beside a floor measured in the same run.

    python3 scripts/bench.py [--quick] [--out FILE]

Prints a table and writes the same figures as JSON: for each, the median of at
least 5 repetitions with min and max, the floor's, and their ratio. Absolute
times drift on shared machines; ratios to a floor measured alongside do not.
Nothing here is asserted: the tests stay functional.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT.parent / "shared" / "corpus"


@dataclass(frozen=True)
class Sample:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Sample:
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    value: Sample
    floor: Sample | None
    ratio: float | None  # value / floor, in the direction the target is stated
    target: str
    note: str = ""


def timed(work: Callable[[], object], repetitions: int) -> list[float]:
    work()  # warm up: imports, compiled patterns, caches
    out = []
    for _ in range(repetitions):
        start = time.perf_counter()
        work()
        out.append(time.perf_counter() - start)
    return out


def largest_corpus_document() -> Path:
    files = [p for p in CORPUS.iterdir() if p.name != "SOURCES.md"]
    return max(files, key=lambda p: p.stat().st_size)


def bench_discovery(repetitions: int) -> Figure:
    """Discovery on the largest corpus document, against one re.finditer pass of
    the same profile's unit pattern over the same text."""
    from cutter.discovery import discover, infer_profile

    path = largest_corpus_document()
    data = path.read_bytes()
    profile = infer_profile(data)
    pattern = re.compile(profile.unit, re.MULTILINE)
    megabytes = len(data) / 1e6

    def floor() -> object:
        return sum(1 for _ in pattern.finditer(data.decode("utf-8", "surrogateescape")))

    def work() -> object:
        return discover(data, profile)

    value = [megabytes / t for t in timed(work, repetitions)]
    base = [megabytes / t for t in timed(floor, repetitions)]
    units = sum(1 for c in discover(data, profile).candidates if c.kind == "unit")
    return Figure(
        name="discovery",
        unit="MB/s",
        value=Sample.of(value),
        floor=Sample.of(base),
        ratio=statistics.median(value) / statistics.median(base),
        target=">= 0.5x the floor's MB/s",
        note=f"{path.name}, {len(data):,} bytes, {units} units, profile {profile.name}",
    )


BENCHMARKS: dict[str, Callable[[int], Figure]] = {"discovery": bench_discovery}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions, under a minute")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    args = parser.parse_args()
    repetitions = 5 if args.quick else 15
    figures = [BENCHMARKS[name](repetitions) for name in args.only or BENCHMARKS]
    header = ("figure", "median", "min", "max", "floor", "ratio")
    print("{:<12} {:>12} {:>10} {:>10} {:>12} {:>7}  target".format(*header))
    for f in figures:
        floor = f"{f.floor.median:.2f}" if f.floor else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        print(
            f"{f.name:<12} {f.value.median:>9.2f} {f.unit:<2} {f.value.min:>10.2f} "
            f"{f.value.max:>10.2f} {floor:>12} {ratio:>7}  {f.target}"
        )
        if f.note:
            print(f"{'':<12} {f.note}")
    report = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "repetitions": repetitions,
        "figures": [asdict(f) for f in figures],
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
