"""``status`` commands over a real daemon's Unix socket from concurrent clients.

A ``cutter daemon`` subprocess on a fresh state directory (the embedded file
stores, JSON log to a file as operators run it) holds a few dry runs waiting at
SG_1. ``CLIENTS`` connections then each send ``COMMANDS`` ``status`` commands,
one in flight per connection (send, wait for the reply, send the next), as a real
client does. The figure is commands answered per wall second. There is no floor:
the target is absolute.

The clients run in this process on plain asyncio streams with the protocol's own
codec (``cutter.core.protocol``), so that they cost less than the daemon they measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import ROOT, Figure, absolute
from cutter.core.state_dir import StateDir

CLIENTS = 8
COMMANDS = 500  # per client and repetition
WARM_UP = 100  # per client, once, before the repetitions
RUNS = 3  # dry runs at SG_1; client i asks for run i % RUNS
SAMPLE = ROOT / "cutter" / "samples" / "garden-charter.md"
DOC_IDS = [f"bench-charter-{i}" for i in range(RUNS)]  # one open run per document
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0


def run(repetitions: int, quick: bool) -> Figure:
    with tempfile.TemporaryDirectory(prefix="cutter-bench-") as tmp:
        state_dir = Path(tmp) / "state"
        log_path = Path(tmp) / "daemon.jsonl"
        for doc_id in DOC_IDS:
            cutter(["add-document", "--state-dir", str(state_dir), doc_id, str(SAMPLE)])
        with daemon_process(Path(tmp), state_dir) as daemon:
            rates, cpu_rates = asyncio.run(measure(daemon, StateDir(state_dir).socket, repetitions))
        logged = log_path.read_bytes().count(b'"event":"command_received"')
    sent = CLIENTS * (WARM_UP + COMMANDS * repetitions)
    if logged < sent:
        raise RuntimeError(f"{sent} status commands sent, {logged} command_received logged")
    return absolute(
        "daemon",
        "cmd/s",
        rates,
        target=">= 5,000 commands/s",
        limit=5000,
        note=(
            f"{CLIENTS} connections x {COMMANDS} status commands, one in flight each, "
            f"{RUNS} dry runs at SG_1, embedded stores; the clients run in this process and "
            f"compete with the daemon for the {os.cpu_count()} CPUs; cpu: commands per "
            "second of the daemon's CPU time (/proc, clock ticks)"
        ),
        cpu=cpu_rates,
    )


def cutter(args: list[str]) -> None:
    """``cutter ARGS`` as an operator runs it."""
    subprocess.run(
        [sys.executable, "-m", "cutter", *args], cwd=ROOT, check=True, capture_output=True
    )


@contextlib.contextmanager
def daemon_process(tmp: Path, state_dir: Path, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """``cutter daemon`` on ``state_dir`` with its JSON log at ``tmp/daemon.jsonl``,
    stopped with SIGTERM when the block ends; an exit other than 0 raises, with the
    tail of its stderr."""
    command = ["daemon", "--state-dir", str(state_dir), "--log", str(tmp / "daemon.jsonl")]
    with (tmp / "stderr").open("w+b") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cutter", *command, *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=ROOT,
        )
        try:
            yield daemon
        finally:
            code = stop(daemon)
        if code != 0:
            stderr.seek(0)
            tail = stderr.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"the daemon exited {code}: {tail}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``, in seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(daemon: subprocess.Popen[bytes]) -> int:
    """SIGTERM (the daemon drains and exits 0); kill it if it does not go."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        raise


async def measure(
    daemon: subprocess.Popen[bytes], socket: Path, repetitions: int
) -> tuple[list[float], list[float]]:
    """Commands per wall second, and per second of the daemon's CPU time, per repetition."""
    await ready(daemon, socket)
    run_ids = await start_runs(socket)
    await burst(socket, run_ids, WARM_UP)
    rates, cpu_rates = [], []
    for _ in range(repetitions):
        cpu = cpu_seconds(daemon.pid)
        rates.append(await burst(socket, run_ids, COMMANDS))
        cpu_rates.append(CLIENTS * COMMANDS / max(cpu_seconds(daemon.pid) - cpu, 1e-9))
    return rates, cpu_rates


async def ready(daemon: subprocess.Popen[bytes], socket: Path) -> None:
    """Until a ping over the socket is answered (or the daemon exits, or a deadline)."""
    from cutter.core.protocol import Ping, Pong
    from cutter.daemon.client import Client, DaemonUnavailable

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited {daemon.returncode} before it served")
        try:
            async with Client(socket) as client:
                reply = await client.request(Ping(id="ready"))
            if isinstance(reply, Pong):
                return
        except DaemonUnavailable:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no daemon answered on {socket} in {START_TIMEOUT} s")
        await asyncio.sleep(0.02)


async def start_runs(socket: Path) -> list[str]:
    """``RUNS`` dry runs, each walked to SG_1, so ``status`` loads a real sidecar."""
    from cutter.core.protocol import RunInfo, Start
    from cutter.core.states import RunState
    from cutter.daemon.client import Client

    run_ids = []
    async with Client(socket) as client:
        for i, doc_id in enumerate(DOC_IDS):
            reply = await client.request(Start(id=f"start-{i}", doc_id=doc_id, started_by="bench"))
            if not isinstance(reply, RunInfo):
                raise RuntimeError(f"start answered {reply}")
            if reply.run.state is not RunState.AWAITING_CUT_AUTHORIZATION:
                raise RuntimeError(f"run {reply.run.run_id} stopped at {reply.run.state}")
            run_ids.append(reply.run.run_id)
    return run_ids


async def burst(socket: Path, run_ids: list[str], count: int) -> float:
    """``CLIENTS`` connections, opened first, each sending ``count`` status commands;
    commands answered per second of the slowest connection."""
    from cutter.core.protocol import MAX_FRAME_BYTES

    streams = [
        await asyncio.open_unix_connection(socket, limit=MAX_FRAME_BYTES + 1)
        for _ in range(CLIENTS)
    ]
    try:
        start = time.perf_counter()
        await asyncio.gather(
            *(
                statuses(reader, writer, run_ids[i % len(run_ids)], count, f"c{i}")
                for i, (reader, writer) in enumerate(streams)
            )
        )
        elapsed = time.perf_counter() - start
    finally:
        for _, writer in streams:
            writer.close()
        for _, writer in streams:
            await writer.wait_closed()
    return CLIENTS * count / elapsed


async def statuses(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, run_id: str, count: int, tag: str
) -> None:
    """One client: ``count`` status commands, each answered before the next is sent."""
    from cutter.core.protocol import RunInfo, StatusOf, decode_reply, encode

    for i in range(count):
        command_id = f"{tag}-{i}"
        writer.write(encode(StatusOf(id=command_id, run_id=run_id)))
        await writer.drain()
        reply = decode_reply(await reader.readuntil(b"\n"))
        if not isinstance(reply, RunInfo) or reply.id != command_id or reply.run.run_id != run_id:
            raise RuntimeError(f"status {command_id} answered {reply}")
