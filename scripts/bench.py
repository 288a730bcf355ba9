#!/usr/bin/env python3
"""iu-cutter benchmarks: each figure beside a floor measured in the same run.

    python3 scripts/bench.py [--quick] [--out FILE] [--only NAME ...]

Prints a table and writes the same figures as JSON: for each, the median of at
least 5 repetitions with min and max, the floor's, and their ratio; beside them
the same figure and floor from this process's CPU time (``cpu``, ``floor cpu``:
a time figure's CPU time, a rate's work per CPU second), where measured. Absolute
times drift on shared machines; ratios to a floor measured alongside do not.
A figure whose target is absolute (runs/s, KiB) has no floor.
Nothing here is asserted: the tests stay functional. One module per figure
under ``scripts/benchmarks/``, whose ``run`` returns a figure or several.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from benchmarks.common import Figure  # noqa: E402
from benchmarks.fleet import QUICK_RUNS, RUNS  # noqa: E402

FIGURES = (
    "ask",
    "walk",
    "embedded",
    "fleet",
    "pg",
    "discovery",
    "daemon",
    "runs",
    "connections",
    "offloop",
    "history",
    "revert",
)


def print_table(figures: list[Figure]) -> None:
    header = ("figure", "median", "min", "max", "floor", "ratio", "", "cpu", "floor cpu")
    print("{:<10} {:>15} {:>10} {:>10} {:>10} {:>7} {:<4} {:>10} {:>10}  target".format(*header))
    for f in figures:
        floor = f"{f.floor.median:.2f}" if f.floor else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        cpu = f"{f.cpu.median:.2f}" if f.cpu else "-"
        floor_cpu = f"{f.floor_cpu.median:.2f}" if f.floor_cpu else "-"
        print(
            f"{f.name:<10} {f.value.median:>9.2f} {f.unit:<5} {f.value.min:>10.2f} "
            f"{f.value.max:>10.2f} {floor:>10} {ratio:>7} {'met' if f.met else 'MISS':<4} "
            f"{cpu:>10} {floor_cpu:>10}  {f.target}"
        )
        if f.note:
            print(f"{'':<10} {f.note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"5 repetitions, a fleet of {QUICK_RUNS} runs (not 1,000), a few minutes",
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--only", choices=FIGURES, action="append", help="repeatable")
    args = parser.parse_args()
    repetitions = 5 if args.quick else 15
    from cutter.runtime.logs import configure_json

    configure_json(io.StringIO())  # every figure renders its JSON log events, into memory
    figures: list[Figure] = []
    for name in args.only or FIGURES:
        module = importlib.import_module(f"benchmarks.{name}")
        produced: Figure | list[Figure] = module.run(repetitions, args.quick)
        figures.extend(produced if isinstance(produced, list) else [produced])
    print_table(figures)
    if args.out:
        report = {
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python3", "scripts/bench.py", *sys.argv[1:]]),
            "repetitions": repetitions,
            "fleet_runs": QUICK_RUNS if args.quick else RUNS,
            "figures": [asdict(f) for f in figures],
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
