"""An ``ask`` round trip through the actor runtime, against a bare request/response
over two anyio memory object streams."""

from __future__ import annotations

from benchmarks.common import Clocked, Figure, bare_hops, clocked, compared

ROUND_TRIPS = 2000


def run(repetitions: int, quick: bool) -> Figure:
    import anyio

    from actors import Actor, ActorSystem, Context

    class Echo(Actor[int, int]):
        async def receive(self, message: int, ctx: Context) -> int:
            return message

    async def round_trips() -> Clocked:
        async with ActorSystem("bench") as system:
            ref = await system.spawn(Echo(), "echo")
            with clocked() as clock:
                for i in range(ROUND_TRIPS):
                    await ref.ask(i, timeout=5)
            return clock

    anyio.run(round_trips)  # warm up
    asks = [anyio.run(round_trips) for _ in range(repetitions)]
    hops = [anyio.run(bare_hops, ROUND_TRIPS) for _ in range(repetitions)]
    per = 1e6 / ROUND_TRIPS
    return compared(
        "ask",
        "us",
        [c.wall * per for c in asks],
        [c.wall * per for c in hops],
        target="<= 1.3x the floor",
        limit=1.3,
        note=f"{ROUND_TRIPS} sequential round trips per repetition, asyncio",
        cpu=[c.cpu * per for c in asks],
        floor_cpu=[c.cpu * per for c in hops],
    )
