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
import io
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


ROUND_TRIPS = 2000


async def bare_hops(count: int, then: Callable[[], None] | None = None) -> float:
    """Seconds for ``count`` request/response hops over two anyio memory object
    streams (the floor of ``ask`` and of the walk), plus ``then`` if given."""
    import anyio

    to_server, server_in = anyio.create_memory_object_stream[int](16)
    to_client, client_in = anyio.create_memory_object_stream[int](16)

    async def server() -> None:
        async with server_in, to_client:
            async for message in server_in:
                await to_client.send(message)

    async with anyio.create_task_group() as tg, to_server, client_in:
        tg.start_soon(server)
        start = time.perf_counter()
        for i in range(count):
            await to_server.send(i)
            await client_in.receive()
        if then is not None:
            then()
        elapsed = time.perf_counter() - start
        await to_server.aclose()
    return elapsed


def bench_ask(repetitions: int) -> Figure:
    """An ask round trip through the actor runtime, against a bare request/response
    over two anyio memory object streams."""
    import anyio

    from actors import Actor, ActorSystem, Context

    class Echo(Actor[int, int]):
        async def receive(self, message: int, ctx: Context) -> int:
            return message

    async def actor_round_trips() -> float:
        async with ActorSystem("bench") as system:
            ref = await system.spawn(Echo(), "echo")
            start = time.perf_counter()
            for i in range(ROUND_TRIPS):
                await ref.ask(i, timeout=5)
            return (time.perf_counter() - start) / ROUND_TRIPS

    value = [anyio.run(actor_round_trips) * 1e6 for _ in range(repetitions)]
    base = [anyio.run(bare_hops, ROUND_TRIPS) / ROUND_TRIPS * 1e6 for _ in range(repetitions)]
    return Figure(
        name="ask",
        unit="us",
        value=Sample.of(value),
        floor=Sample.of(base),
        ratio=statistics.median(value) / statistics.median(base),
        target="<= 1.3x the floor",
        note=f"{ROUND_TRIPS} sequential round trips per repetition, asyncio",
    )


def bench_walk(repetitions: int) -> Figure:
    """One full 11-phase walk through both gates, 12 IUs, in-memory stores, against
    11 bare request/response hops plus one structlog JSON event per transition."""
    import anyio
    import structlog

    from cutter.kbdocs import Approval, Decision
    from cutter.ports import Target
    from cutter.runner import Runner, RunnerConfig, utc_now
    from cutter.stores.memory_records import InMemoryKnowledgeBase, InMemoryRunStore
    from cutter.stores.memory_target import (
        InMemoryIUStore,
        InMemoryLedger,
        InMemorySources,
        StaticGrantProbe,
    )
    from cutter.stores.seeded import InMemoryDiscoverer
    from cutter.walk import Gate

    transitions = 36  # the events of a full walk (tests/test_e2e.py pins them)

    class Off:
        async def engaged(self) -> bool:
            return False

    async def walk() -> float:
        disc = InMemoryDiscoverer.seeded(12)
        sources = InMemorySources()
        sources.publish("doc", disc.source, sv_id="sv-1")
        kb = InMemoryKnowledgeBase()
        config = RunnerConfig(
            target=Target(sources=sources, ius=InMemoryIUStore(), ledger=InMemoryLedger()),
            kb=kb,
            run_store=InMemoryRunStore(),
            discoverer=disc,
            grants=StaticGrantProbe(),
            kill_switch=Off(),
        )
        async with Runner(config) as runner:
            start = time.perf_counter()
            sc = await runner.cut("doc", started_by="ann")
            for gate in (Gate.SG_1, Gate.SG_2):
                pending = sc.pending_gate
                assert pending is not None
                kb_id = f"approvals/{sc.run_id}/{gate.value}"
                await kb.put(
                    kb_id,
                    Approval(
                        run_id=sc.run_id,
                        gate=gate,
                        request_digest=pending.request_digest,
                        nonce=pending.nonce,
                        decision=Decision.APPROVE,
                        approver="bob",
                        reason="bench",
                        issued_at=utc_now(),
                        review_decision_id="rv" if gate is Gate.SG_2 else None,
                    ),
                )
                sc = await runner.resume(sc.run_id, kb_id)
            return time.perf_counter() - start

    def log_events() -> None:
        log = structlog.get_logger("bench")
        for i in range(transitions):
            log.info("run_state_changed", run_id="run-x", transition=i)

    value = [anyio.run(walk) * 1e3 for _ in range(repetitions)]
    base = [anyio.run(bare_hops, 11, log_events) * 1e3 for _ in range(repetitions)]
    return Figure(
        name="walk",
        unit="ms",
        value=Sample.of(value),
        floor=Sample.of(base),
        ratio=statistics.median(value) / statistics.median(base),
        target="<= 2x the floor",
        note="cut + two resumes, 12 IUs, dry run, in-memory stores",
    )


BENCHMARKS: dict[str, Callable[[int], Figure]] = {
    "discovery": bench_discovery,
    "ask": bench_ask,
    "walk": bench_walk,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions, under a minute")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    args = parser.parse_args()
    repetitions = 5 if args.quick else 15
    from cutter.logs import configure_json

    configure_json(io.StringIO())  # every figure renders its JSON log events, into memory
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
