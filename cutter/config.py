"""Build a ``RunnerConfig`` for the Python API: every store a file under one directory.

    from cutter import Mode, Runner, file_config

    config = file_config(Path(".cutter"))
    await config.target.sources.publish("doc-1", data)   # the document to cut
    async with Runner(config) as runner:
        sc = await runner.cut("doc-1", Mode.DRY_RUN, started_by="ann")

The stores are the daemon's (``cutter daemon --state-dir DIR`` lays out the same
files), so a directory written here can be served by a daemon later, but not at the
same time: hold ``cutter.stores.owner.claim(DIR, holder)`` while you use it, as the
daemon does (docs/operations.md, "One owner per state directory"). Anything else
(PostgreSQL, another discoverer, a policy) is a field of ``RunnerConfig`` to set
with ``dataclasses.replace`` or by building the ``RunnerConfig`` yourself.
"""

from __future__ import annotations

from pathlib import Path

from cutter.approvals import GatePolicy
from cutter.discovery import TextDiscoverer
from cutter.ports import Discoverer, Target
from cutter.runner import RunnerConfig
from cutter.stores.file_target import FileIUStore, FileLedger, FileSources
from cutter.stores.files import FileKillSwitch, FileKnowledgeBase, FileRunStore
from cutter.stores.memory_target import StaticGrantProbe


def file_config(
    state_dir: Path,
    *,
    policy: GatePolicy | None = None,
    discoverer: Discoverer | None = None,
) -> RunnerConfig:
    """A ``RunnerConfig`` whose sources, IUs, ledger, KB, runs and kill switch are
    files under ``state_dir`` (made as needed), with the text discoverer, a grant
    probe that grants everything the file target needs, and ``policy`` (by default
    one approver per gate, none the run's starter, approvals good for 24 hours)."""
    target = state_dir / "target"
    return RunnerConfig(
        target=Target(
            sources=FileSources(target / "sources"),
            ius=FileIUStore(target / "ius"),
            ledger=FileLedger(target / "ledger"),
        ),
        kb=FileKnowledgeBase(state_dir / "kb"),
        run_store=FileRunStore(state_dir / "runs"),
        discoverer=discoverer or TextDiscoverer(),
        grants=StaticGrantProbe(),
        kill_switch=FileKillSwitch(state_dir / "kill-switch"),
        policy=policy or GatePolicy(),
    )
