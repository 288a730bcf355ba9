"""The walk figure's walk (12 IUs, both gates, scripted approvals), live, on the
embedded database with durability on, against its honest floor: the same walk's CPU
time on the in-memory stores plus one ``fdatasync`` per durable point.

A durable point is a moment the walk tells someone outside what it did: the end of
each walk segment (the cut, each resume), where the runner awaits
``RunnerConfig.durable`` before returning. Whatever a store's layout, what was
acknowledged must be on disk then, so any durable store pays at least one sync per
acknowledgement; the store writes in between (each save of the run, each KB doc, the
backup, leg A, the enact, the ledger append, …) need only be ordered and crash-safe
(docs/storage.md, "Durability"). The points are counted on an in-memory live walk by
wrapping its ``durable`` (``benchmarks.durable``), so the count is the walk's own; the
note also gives the store writes, the points a store that syncs every write pays.
The floor pays for each point one append of a 4 KiB block to a small file on the
same filesystem and its ``fdatasync``, measured in the same run, interleaved with the
walks. It does not replay the current design's own writes.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import Figure, compared, embedded, publish, scratch_dir
from benchmarks.durable import counting_acknowledgements, counting_writes, describe, fdatasyncs
from benchmarks.walk import IUS, memory_config, walk_once, walk_through

if TYPE_CHECKING:
    from cutter.core.mode import Mode
    from cutter.walk.runner import RunnerConfig


def source() -> bytes:
    """A document of ``IUS`` articles, which ``TextDiscoverer`` cuts into ``IUS`` units."""
    from cutter.stores.memory.seeded import InMemoryDiscoverer

    return InMemoryDiscoverer.seeded(IUS).source


async def publish_all(config: RunnerConfig, doc_ids: Sequence[str]) -> None:
    data = source()
    for doc_id in doc_ids:
        await publish(config, doc_id, data)


async def checked_walk(config: RunnerConfig, doc_id: str, mode: Mode, units: int = IUS) -> None:
    """One walk of ``doc_id``, its manifest checked afterwards: the walk is the one meant."""
    from cutter.walk.phases.context import load_manifest

    _, sc = await walk_through(config, doc_id, mode)
    manifest = await load_manifest(config.kb, sc)
    assert manifest is not None
    assert len(manifest.ius) == units, len(manifest.ius)


def filesystem(path: Path) -> str:
    """``<fstype> (<device>)`` of the mount holding ``path``, from /proc/mounts."""
    best = ("", "?", "?")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            device, point, fstype = line.split()[:3]
            if path.resolve().is_relative_to(point) and len(point) >= len(best[0]):
                best = (point, fstype, device)
    return f"{best[1]} ({best[2]})"


async def measure(base: Path, repetitions: int) -> dict[str, Any]:
    from cutter.core.mode import Mode, enable_execution

    enable_execution()  # the walk is live: leg A, enact and the ledger are written
    counted, acknowledged = counting_acknowledgements(memory_config())
    counts = counting_writes(counted)
    await walk_once(counted, "doc", Mode.LIVE)
    points = acknowledged()
    walks, floors = [], []
    async with embedded(base / "state") as config:
        doc_ids = [f"doc-{i}" for i in range(repetitions + 1)]
        await publish_all(config, doc_ids)
        await checked_walk(config, doc_ids[0], Mode.LIVE)  # warm up (imports, directories)
        for doc_id in doc_ids[1:]:  # interleaved, so drift hits both alike
            walks.append(await walk_once(config, doc_id, Mode.LIVE))
            memory_walk = await walk_once(memory_config(), "doc", Mode.LIVE)
            floors.append((memory_walk, fdatasyncs(base, points)))
    return {"points": points, "counts": counts, "walks": walks, "floors": floors}


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    with scratch_dir("embedded") as tmp:
        base = Path(tmp)
        got = anyio.run(measure, base, repetitions)
        where = filesystem(base)
    points, walks, floors = got["points"], got["walks"], got["floors"]
    memory_cpu = statistics.median(m.cpu for m, _ in floors) * 1e3
    syncs = statistics.median(s.wall for _, s in floors) * 1e3
    return compared(
        "embedded",
        "ms",
        [w.wall * 1e3 for w in walks],
        [(m.cpu + s.wall) * 1e3 for m, s in floors],
        target="<= 1.5x the floor",
        limit=1.5,
        note=(
            f"cut + two resumes, {IUS} IUs, live, embedded database, {where}; "
            f"floor: the same walk's CPU on the in-memory stores ({memory_cpu:.1f} ms) + "
            f"{points} fdatasyncs of a 4 KiB append ({syncs:.1f} ms), one per "
            f"acknowledgement; the walk's store writes: {sum(got['counts'].values())} "
            f"({describe(got['counts'])})"
        ),
        cpu=[w.cpu * 1e3 for w in walks],
        floor_cpu=[(m.cpu + s.cpu) * 1e3 for m, s in floors],
    )
