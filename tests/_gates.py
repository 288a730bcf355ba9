"""A ``GateVerifier`` for tests that call a writing phase body directly, outside a
walk, where no gate was ever opened: it passes every gate. Runs through the runner
get the real one (``cutter.walk.gate_check.PolicyGateVerifier``)."""

from __future__ import annotations

from cutter.core.route import Gate
from cutter.core.sidecar import Sidecar


class UncheckedGates:
    async def verify(self, sidecar: Sidecar, gate: Gate) -> None:
        return None
