"""The walk figure's walk (12 IUs, both gates, scripted approvals) on the embedded
file stores with fsync on, against the same number of bare durable atomic writes.

A warm-up walk counts what the stores really write: every call of the write
primitives (``write_atomic``, ``create_exclusive``, ``create_once``), with its
path and size, every ``fsync`` (file or directory) and every ``mkdir``. The
floor replays exactly those writes, same relative paths and sizes, into a fresh
directory tree on the same filesystem, each as the least a durable atomic
replace needs: a temp file, ``fsync``, ``rename``, ``fsync`` of the directory.
The directories are made before the floor's clock starts, so the walk's own
``mkdir``s (and the parent fsync each needs) count against it.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import Figure, compared, scratch_dir
from benchmarks.walk import IUS, approve_and_resume

if TYPE_CHECKING:
    from cutter.runner import RunnerConfig

PRIMITIVES = ("write_atomic", "create_exclusive", "create_once")


def source() -> bytes:
    """A document of ``IUS`` articles, which ``TextDiscoverer`` cuts into ``IUS`` units."""
    from cutter.stores.seeded import InMemoryDiscoverer

    return InMemoryDiscoverer.seeded(IUS).source


def file_config(state_dir: Path) -> RunnerConfig:
    """The daemon's embedded configuration: every store a file under ``state_dir``."""
    from cutter.approvals import GatePolicy
    from cutter.daemon.main import embedded_config

    return embedded_config(state_dir, GatePolicy())[0]


async def publish(config: RunnerConfig, doc_ids: Sequence[str]) -> None:
    from cutter.stores.file_target import FileSources

    sources = config.target.sources
    assert isinstance(sources, FileSources)
    data = source()
    for doc_id in doc_ids:
        await sources.publish(doc_id, data)


async def file_walk(config: RunnerConfig, doc_id: str) -> float:
    """Seconds for one cut and both resumes of ``doc_id``, as ``walk.one_walk`` times it."""
    from cutter.phases.context import load_manifest
    from cutter.runner import Runner
    from cutter.states import RunState

    async with Runner(config) as runner:
        start = time.perf_counter()
        sc = await runner.cut(doc_id, started_by="operator")
        sc = await approve_and_resume(runner, config, sc)
        elapsed = time.perf_counter() - start
    assert sc.state is RunState.CLOSEOUT_REPORTED, sc.state
    manifest = await load_manifest(config.kb, sc)
    assert manifest is not None
    assert len(manifest.ius) == IUS, manifest.ius
    return elapsed


@dataclass
class Census:
    """What the stores did during a walk."""

    writes: list[tuple[str, str, int]] = field(default_factory=list)  # primitive, path, bytes
    file_fsyncs: int = 0
    dir_fsyncs: int = 0
    mkdirs: int = 0

    def describe(self) -> str:
        kinds = Counter(kind for kind, _, _ in self.writes)
        which = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        return (
            f"{len(self.writes)} atomic writes ({which}), "
            f"{self.file_fsyncs + self.dir_fsyncs} fsyncs ({self.file_fsyncs} files, "
            f"{self.dir_fsyncs} directories), {self.mkdirs} mkdirs"
        )


@contextmanager
def census_of(root: Path) -> Iterator[Census]:
    """Count the write primitives, fsyncs and mkdirs of the ``cutter`` stores while
    the block runs, by wrapping them where the stores look them up (benchmark only)."""
    import cutter.stores.atomic
    import cutter.stores.file_primitives

    census = Census()
    originals = {
        name: getattr(cutter.stores.atomic, name, None)
        or getattr(cutter.stores.file_primitives, name)
        for name in PRIMITIVES
    }

    def counting(name: str, original: Any) -> Any:
        def primitive(path: Path, data: bytes, *args: Any, **kwargs: Any) -> Any:
            census.writes.append((name, os.path.relpath(path, root), len(data)))
            return original(path, data, *args, **kwargs)

        return primitive

    patched: list[tuple[object, str, object]] = []
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("cutter."):
            for name, original in originals.items():
                if getattr(module, name, None) is original:
                    patched.append((module, name, original))
                    setattr(module, name, counting(name, original))
    real_fsync, real_mkdir = os.fsync, os.mkdir

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            census.dir_fsyncs += 1
        else:
            census.file_fsyncs += 1
        real_fsync(fd)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        census.mkdirs += 1
        real_mkdir(path, *args, **kwargs)

    os.fsync, os.mkdir = fsync, mkdir  # type: ignore[assignment]
    try:
        yield census
    finally:
        os.fsync, os.mkdir = real_fsync, real_mkdir
        for module, name, original in patched:
            setattr(module, name, original)


def durable_write(path: Path, data: bytes) -> None:
    """The least a durable atomic replace needs: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def bare_writes(root: Path, census: Census) -> float:
    """Seconds for the census's writes as bare durable writes under ``root``."""
    writes = [(root / path, b"x" * size) for _, path, size in census.writes]
    for path, _ in writes:
        path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path, data in writes:
        durable_write(path, data)
    return time.perf_counter() - start


def filesystem(path: Path) -> str:
    """``<fstype> (<device>)`` of the mount holding ``path``, from /proc/mounts."""
    best = ("", "?", "?")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            device, point, fstype = line.split()[:3]
            if path.resolve().is_relative_to(point) and len(point) >= len(best[0]):
                best = (point, fstype, device)
    return f"{best[1]} ({best[2]})"


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    with scratch_dir("files") as tmp:
        base = Path(tmp)
        state = base / "state"
        config = file_config(state)
        doc_ids = [f"doc-{i}" for i in range(repetitions + 2)]
        anyio.run(publish, config, doc_ids)
        anyio.run(file_walk, config, doc_ids[0])  # warm up (imports, the state's directories)
        with census_of(state) as census:
            anyio.run(file_walk, config, doc_ids[1])
        walks: list[float] = []
        floors: list[float] = []
        for i, doc_id in enumerate(doc_ids[2:]):  # interleaved, so drift hits both alike
            walks.append(anyio.run(file_walk, config, doc_id) * 1e3)
            floors.append(bare_writes(base / f"floor-{i}", census) * 1e3)
        where = filesystem(base)
    return compared(
        "files",
        "ms",
        walks,
        floors,
        target="<= 1.5x the floor",
        limit=1.5,
        note=(
            f"cut + two resumes, {IUS} IUs, dry run (the file target is read; its writes "
            f"stay in the run's sandbox), FileKnowledgeBase + FileRunStore, fsync on, "
            f"{where}; a walk does {census.describe()}; "
            f"floor: those {len(census.writes)} writes, same paths and sizes, each temp + "
            "fsync + rename + directory fsync, directories made beforehand"
        ),
    )
