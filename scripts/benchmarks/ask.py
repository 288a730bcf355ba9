"""An ``ask`` round trip through the actor runtime, against the honest in-process
request/reply (``benchmarks.honest``), on asyncio and on trio: one figure per
backend, each floor measured in the same run, alternating with the asks."""

from __future__ import annotations

from benchmarks.common import Clocked, Figure, clocked, compared
from benchmarks.honest import honest_round_trips

ROUND_TRIPS = 2000
SAMPLES_PER_REPETITION = 3  # a sample is ~50 ms: three per repetition steady the median
BACKENDS = ("asyncio", "trio")


def run(repetitions: int, quick: bool) -> list[Figure]:
    return [figure(backend, repetitions) for backend in BACKENDS]


async def round_trips(count: int) -> Clocked:
    """``count`` sequential asks to an actor that answers at once."""
    from actors import Actor, ActorSystem, Context, Request

    class Ping(Request[int]):
        __slots__ = ("n",)

        def __init__(self, n: int) -> None:
            self.n = n

    class Echo(Actor[Ping, int]):
        async def receive(self, message: Ping, ctx: Context) -> int:
            return message.n

    async with ActorSystem("bench") as system:
        ref = await system.spawn(Echo(), "echo")
        pings = [Ping(i) for i in range(count)]
        with clocked() as clock:
            for ping in pings:
                await ref.ask(ping, timeout=5)
    return clock


def figure(backend: str, repetitions: int) -> Figure:
    import anyio

    anyio.run(round_trips, ROUND_TRIPS, backend=backend)  # warm up
    anyio.run(honest_round_trips, ROUND_TRIPS, backend=backend)
    asks: list[Clocked] = []
    floors: list[Clocked] = []
    for _ in range(repetitions * SAMPLES_PER_REPETITION):  # alternating: drift hits both
        asks.append(anyio.run(round_trips, ROUND_TRIPS, backend=backend))
        floors.append(anyio.run(honest_round_trips, ROUND_TRIPS, backend=backend))
    per = 1e6 / ROUND_TRIPS
    return compared(
        "ask" if backend == "asyncio" else f"ask-{backend}",
        "us",
        [c.wall * per for c in asks],
        [c.wall * per for c in floors],
        target="<= 1.3x the floor",
        limit=1.3,
        note=(
            f"{ROUND_TRIPS} sequential round trips per repetition, {backend}; floor: a deque "
            "mailbox woken by a one-shot slot, the reply by another (benchmarks.honest)"
        ),
        cpu=[c.cpu * per for c in asks],
        floor_cpu=[c.cpu * per for c in floors],
    )
