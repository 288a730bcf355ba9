"""An ``ask`` round trip through the actor runtime, against a bare request/response
over two anyio memory object streams."""

from __future__ import annotations

import time

from benchmarks.common import Figure, bare_hops, compared

ROUND_TRIPS = 2000


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    from actors import Actor, ActorSystem, Context

    class Echo(Actor[int, int]):
        async def receive(self, message: int, ctx: Context) -> int:
            return message

    async def round_trips() -> float:
        async with ActorSystem("bench") as system:
            ref = await system.spawn(Echo(), "echo")
            start = time.perf_counter()
            for i in range(ROUND_TRIPS):
                await ref.ask(i, timeout=5)
            return (time.perf_counter() - start) / ROUND_TRIPS

    anyio.run(round_trips)  # warm up
    return compared(
        "ask",
        "us",
        [anyio.run(round_trips) * 1e6 for _ in range(repetitions)],
        [anyio.run(bare_hops, ROUND_TRIPS) / ROUND_TRIPS * 1e6 for _ in range(repetitions)],
        target="<= 1.3x the floor",
        limit=1.3,
        note=f"{ROUND_TRIPS} sequential round trips per repetition, asyncio",
    )
