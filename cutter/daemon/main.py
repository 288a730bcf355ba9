"""``cutter daemon``: assemble the stores, recover runs, serve, drain on a signal.

Start-up: own the state directory (``cutter.stores.owner``: an exclusive lock on
``<state_dir>/owner.pid`` for the process's life, whatever the transport, so a
second daemon is refused before it opens anything), open the stores (the SQLite
database ``<state_dir>/cutter.sqlite3``, opened once for the process's life, or
PostgreSQL), finish what a previous process left half-done (runs mid-walk,
``Runner.unfinished``), then serve. A state directory the file stores of an
earlier cutter wrote is refused before anything is claimed or opened
(``cutter.assembly.embedded.check_layout``). SIGTERM, SIGINT and the ``shutdown``
command take the same path: stop taking commands, let each walk finish the
phase it is in and persist (it stays RUNNING, so the next start continues it),
close, exit 0. One log line says started, one stopped.

Permissions (docs/gates.md, trust model): the daemon's umask is 0077, so every
store it creates is its own alone. The state directory is 0700; with
``--socket-group G`` it is 0710 and group G — the group may traverse it to reach
``daemon.sock`` by name (0660, group G), not list it — and every other entry of
the directory is stripped of group and other bits at start, so the stores stay
private whatever an older daemon or ``add-document`` left there.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import anyio

from cutter.assembly.embedded import check_layout
from cutter.core.approvals import GatePolicy
from cutter.core.errors import StateDirUnusable
from cutter.core.mode import enable_execution
from cutter.core.ports import KillSwitchControl
from cutter.core.state_dir import StateDir
from cutter.daemon.bus import EventBus
from cutter.daemon.console import Sinks, choose_sinks, configure
from cutter.daemon.housekeeping import remove_socket
from cutter.daemon.limits import ConnectionLimits, fit_to_open_files
from cutter.daemon.notify import TransitionFanout, open_deliverer
from cutter.daemon.service import Daemon
from cutter.daemon.transport import claim_socket, serve_socket, serve_stdio, socket_gid
from cutter.discovery import TextDiscoverer
from cutter.runtime.hook_dir import check_hooks_dir
from cutter.runtime.logs import Logger, get_logger, open_private_log
from cutter.runtime.offloop import use_worker_processes
from cutter.stores.owner import claim
from cutter.stores.storage_errors import typed_storage_errors
from cutter.walk.runner import Runner, RunnerConfig
from cutter.web.address import bind, parse_address
from cutter.web.links import LinkBook
from cutter.web.server import serve_http


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    state_dir: Path
    dsn: str | None = None
    control_dsn: str | None = None  # the cutter_control login (None: --dsn's login holds both)
    stdio: bool = False
    log_path: Path | None = None  # None: stdout (not allowed with stdio)
    allow_self_approval: bool = False
    required_approvals: int = 1
    enable_execution: bool = False
    socket_group: str | None = None  # None: the socket is the owner's alone
    http: str | None = None  # HOST:PORT of the review page (loopback only); None: none
    link_ttl_seconds: int = 15 * 60  # how long a minted review link lives
    # connections, their deadlines, the bytes they buffer (cutter.daemon.limits)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    approval_ttl_seconds: int = 24 * 3600  # the default policy's ttl_seconds, both gates
    hooks_dir: Path | None = None  # None: <state_dir>/hooks

    @property
    def hooks_path(self) -> Path:
        """The hooks directory (docs/operations.md, Hooks)."""
        return self.hooks_dir if self.hooks_dir is not None else StateDir(self.state_dir).hooks

    @property
    def socket_path(self) -> Path:
        return StateDir(self.state_dir).socket

    @property
    def holder(self) -> str:
        """What the owner lock says this process is, to a daemon it refuses."""
        return "cutter daemon --stdio" if self.stdio else f"cutter daemon on {self.socket_path}"


@asynccontextmanager
async def open_stores(
    options: DaemonOptions,
) -> AsyncIterator[tuple[RunnerConfig, KillSwitchControl]]:
    policy = GatePolicy(
        allow_self_approval=options.allow_self_approval,
        required_approvals=options.required_approvals,
        approval_ttl=timedelta(seconds=options.approval_ttl_seconds),
    )
    if options.dsn is None:
        from cutter.assembly.embedded import embedded_config
        from cutter.stores.sqlite.records import SqliteKillSwitch

        async with embedded_config(options.state_dir, policy=policy) as config:
            assert isinstance(config.kill_switch, SqliteKillSwitch)
            yield config, config.kill_switch
        return
    from cutter.assembly.postgres import pg_config
    from cutter.stores.pg.records import PgKillSwitch

    async with pg_config(
        options.dsn,
        TextDiscoverer(),
        control_dsn=options.control_dsn,
        check_roles=True,
        policy=policy,
    ) as config:
        assert isinstance(config.kill_switch, PgKillSwitch)
        yield config, config.kill_switch


async def serve(options: DaemonOptions, sinks: Sinks) -> int:
    bus = EventBus()
    configure(sinks)
    if options.enable_execution:
        enable_execution()
    # run() made the directory and owns it; only the socket is shared, with one group.
    gid = None if options.socket_group is None else socket_gid(options.socket_group)
    os.umask(0o077)
    await anyio.to_thread.run_sync(private_state_dir, options.state_dir, gid)
    # An unsafe hooks directory refuses the start (HooksDirUnsafe), before anything runs.
    await anyio.to_thread.run_sync(
        check_hooks_dir, options.hooks_path, get_logger(component="hooks")
    )
    # Handlers stay installed until the very end: a second SIGTERM during the drain
    # must not kill the daemon half-way (a supervisor escalates with SIGKILL).
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        return await _serve(options, bus, signals)


def private_state_dir(state_dir: Path, gid: int | None) -> None:
    """0700 (0710 and group ``gid`` when the socket is shared); every entry in it
    but the socket loses its group and other bits. ``StateDirUnusable`` on failure."""
    try:
        if gid is not None:
            os.chown(state_dir, -1, gid)
        os.chmod(state_dir, 0o700 if gid is None else 0o710)
        with os.scandir(state_dir) as entries:
            for entry in entries:
                if entry.name == StateDir.SOCKET or entry.is_symlink():
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode & 0o7777
                if mode & 0o077:
                    os.chmod(entry.path, mode & ~0o077, follow_symlinks=False)
    except OSError as exc:
        raise StateDirUnusable(str(state_dir), exc.strerror or type(exc).__name__) from None


async def _serve(options: DaemonOptions, bus: EventBus, signals: AsyncIterator[int]) -> int:
    # Before anything starts, so a refusal is one line: the address, then the socket.
    http = None if options.http is None else bind(*parse_address(options.http))
    try:
        return await _serve_bound(options, bus, signals, http)
    finally:
        if http is not None:
            http.close()  # a no-op once hypercorn owns it


async def _serve_bound(
    options: DaemonOptions,
    bus: EventBus,
    signals: AsyncIterator[int],
    http: socket.socket | None,
) -> int:
    log = get_logger(component="daemon")
    use_worker_processes()  # discovery in worker processes: the loop keeps serving
    if not options.stdio:
        await claim_socket(options.socket_path)
    try:
        await _serve_claimed(options, bus, signals, http, log)
    finally:  # every way out, a failed start too: no socket file is left behind
        if not options.stdio:
            with anyio.CancelScope(shield=True):
                await remove_socket(options.socket_path, log)
    log.info("daemon_stopped")
    return 0


async def _serve_claimed(
    options: DaemonOptions,
    bus: EventBus,
    signals: AsyncIterator[int],
    http: socket.socket | None,
    log: Logger,
) -> None:
    async with (
        open_stores(options) as (stores, kill_switch),
        # Notices (docs/notifications.md): woken by every transition, as watchers are.
        open_deliverer(config := replace(stores, hooks_dir=options.hooks_path)) as deliverer,
        Runner(replace(config, transitions=TransitionFanout((bus, deliverer)))) as runner,
        anyio.create_task_group() as jobs,
    ):
        links = LinkBook(ttl=timedelta(seconds=options.link_ttl_seconds))
        daemon = Daemon(runner, kill_switch, bus, jobs, links=links, policy_changed=deliverer.wake)
        bus.on_drop = daemon.watcher_dropped
        # The page stops on stop_requested by itself (gracefully), after the intake.
        async with anyio.create_task_group() as web, anyio.create_task_group() as intake:
            if http is not None:
                await web.start(serve_http, http, daemon)
            intake.start_soon(_signals, daemon, signals)
            intake.start_soon(deliverer.run)  # cancelled with the intake, after the drain
            if options.stdio:
                intake.start_soon(_stdio_then_stop, daemon)
            else:
                gid = None if options.socket_group is None else socket_gid(options.socket_group)
                limits = fit_to_open_files(options.limits)
                if limits != options.limits:
                    log.warning(
                        "connection_limit_lowered",
                        asked=options.limits.max_connections,
                        max_connections=limits.max_connections,
                        reason="the open-file limit (RLIMIT_NOFILE) holds no more",
                    )
                await intake.start(serve_socket, options.socket_path, daemon, gid, limits)
            for unfinished in await runner.unfinished():
                log.info(
                    "run_recovering",
                    run_id=unfinished.run_id,
                    state=unfinished.state.value,
                    approval_kb_id=unfinished.approval_kb_id,
                )
                daemon.background(
                    functools.partial(runner.resume, unfinished.run_id, unfinished.approval_kb_id),
                    f"recover {unfinished.run_id}",
                )
            log.info(
                "daemon_started",
                state_dir=str(options.state_dir),
                transport="stdio" if options.stdio else str(options.socket_path),
                socket_group=options.socket_group,
                http=daemon.web_url,
                principal=daemon.owner,
                store="postgresql" if options.dsn else "sqlite",
            )
            await daemon.stop_requested.wait()
            await runner.drain()
            intake.cancel_scope.cancel()
        log.info("daemon_draining")


async def _signals(daemon: Daemon, signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        daemon.log.info("signal_received", signal=signal.Signals(signum).name)
        daemon.stop_requested.set()


async def _stdio_then_stop(daemon: Daemon) -> None:
    await serve_stdio(daemon)
    daemon.stop_requested.set()  # stdin closed: nobody is left to serve


def run(options: DaemonOptions) -> int:
    """Serve until stopped; ``StateDirBusy`` (nothing opened, nothing written) when
    another process owns the state directory. The lock is held until the return,
    or until the kernel drops it with the process. ``StateDirUnusable`` (nothing
    claimed) for a state directory of the file stores of an earlier cutter."""
    if options.dsn is None:
        check_layout(options.state_dir)
    with claim(options.state_dir, options.holder):
        if options.log_path is None:
            return anyio.run(serve, options, choose_sinks(None, sys.stdout, sys.stderr))
        with typed_storage_errors(options.log_path):
            log_file = open_private_log(options.log_path)
        with log_file as log_stream:
            return anyio.run(serve, options, choose_sinks(log_stream, sys.stdout, sys.stderr))
