"""``cutter daemon``: assemble the stores, recover runs, serve, drain on a signal.

Start-up: open the stores (files under the state directory, or PostgreSQL),
continue every run a previous process left mid-walk, then serve. SIGTERM,
SIGINT and the ``shutdown`` command take the same path: stop taking commands,
let each walk finish the phase it is in and persist (it stays RUNNING, so the
next start continues it), close, exit 0. One log line says started, one stopped.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio

from cutter.approvals import GatePolicy
from cutter.daemon.bus import EventBus
from cutter.daemon.service import Daemon
from cutter.daemon.transport import serve_socket, serve_stdio
from cutter.discovery import TextDiscoverer
from cutter.logs import configure_json, get_logger
from cutter.mode import enable_execution
from cutter.ports import KillSwitchControl, Target
from cutter.runner import Runner, RunnerConfig
from cutter.states import RECOVERABLE
from cutter.stores.files import FileKillSwitch, FileKnowledgeBase, FileRunStore
from cutter.stores.memory_target import StaticGrantProbe


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    state_dir: Path
    dsn: str | None = None
    stdio: bool = False
    log_path: Path | None = None  # None: stdout (not allowed with stdio)
    allow_self_approval: bool = False
    required_approvals: int = 1
    enable_execution: bool = False

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "daemon.sock"


def embedded_config(state_dir: Path, policy: GatePolicy) -> tuple[RunnerConfig, KillSwitchControl]:
    """Every store a file under ``state_dir``: the embedded default, durable."""
    from cutter.stores.file_target import FileIUStore, FileLedger, FileSources

    kill_switch = FileKillSwitch(state_dir / "kill-switch")
    target = state_dir / "target"
    config = RunnerConfig(
        target=Target(
            sources=FileSources(target / "sources"),
            ius=FileIUStore(target / "ius"),
            ledger=FileLedger(target / "ledger"),
        ),
        kb=FileKnowledgeBase(state_dir / "kb"),
        run_store=FileRunStore(state_dir / "runs"),
        discoverer=TextDiscoverer(),
        grants=StaticGrantProbe(),
        kill_switch=kill_switch,
        policy=policy,
    )
    return config, kill_switch


@asynccontextmanager
async def open_stores(
    options: DaemonOptions,
) -> AsyncIterator[tuple[RunnerConfig, KillSwitchControl]]:
    policy = GatePolicy(
        allow_self_approval=options.allow_self_approval,
        required_approvals=options.required_approvals,
    )
    if options.dsn is None:
        yield embedded_config(options.state_dir, policy)
        return
    from cutter.pg.records import PgKillSwitch
    from cutter.pg.stores import pg_config

    async with pg_config(options.dsn, TextDiscoverer(), policy=policy) as config:
        assert isinstance(config.kill_switch, PgKillSwitch)
        yield config, config.kill_switch


async def serve(options: DaemonOptions, log_stream: TextIO) -> int:
    bus = EventBus()
    configure_json(log_stream, tap=bus.processor)
    if options.enable_execution:
        enable_execution()
    state_dir = anyio.Path(options.state_dir)
    await state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    await state_dir.chmod(0o700)  # the socket's directory is the owner's alone
    # Handlers stay installed until the very end: a second SIGTERM during the drain
    # must not kill the daemon half-way (a supervisor escalates with SIGKILL).
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        return await _serve(options, bus, signals)


async def _serve(options: DaemonOptions, bus: EventBus, signals: AsyncIterator[int]) -> int:
    log = get_logger(component="daemon")
    async with (
        open_stores(options) as (config, kill_switch),
        Runner(config) as runner,
        anyio.create_task_group() as jobs,
    ):
        daemon = Daemon(runner, kill_switch, bus, jobs)
        bus.on_drop = daemon.watcher_dropped
        async with anyio.create_task_group() as intake:
            intake.start_soon(_signals, daemon, signals)
            if options.stdio:
                intake.start_soon(_stdio_then_stop, daemon)
            else:
                await intake.start(serve_socket, options.socket_path, daemon)
            for sidecar in await runner.runs():
                if sidecar.state in RECOVERABLE:
                    log.info("run_recovering", run_id=sidecar.run_id, state=sidecar.state.value)
                    daemon.background(
                        functools.partial(runner.resume, sidecar.run_id),
                        f"recover {sidecar.run_id}",
                    )
            log.info(
                "daemon_started",
                state_dir=str(options.state_dir),
                transport="stdio" if options.stdio else str(options.socket_path),
                store="postgresql" if options.dsn else "files",
            )
            await daemon.stop_requested.wait()
            runner.drain()
            intake.cancel_scope.cancel()
        log.info("daemon_draining")
    if not options.stdio:
        await anyio.Path(options.socket_path).unlink(missing_ok=True)
    log.info("daemon_stopped")
    return 0


async def _signals(daemon: Daemon, signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        daemon.log.info("signal_received", signal=signal.Signals(signum).name)
        daemon.stop_requested.set()


async def _stdio_then_stop(daemon: Daemon) -> None:
    await serve_stdio(daemon)
    daemon.stop_requested.set()  # stdin closed: nobody is left to serve


def run(options: DaemonOptions) -> int:
    if options.log_path is None:
        return anyio.run(serve, options, sys.stdout)
    with options.log_path.open("a", encoding="utf-8", buffering=1) as log_stream:
        return anyio.run(serve, options, log_stream)
