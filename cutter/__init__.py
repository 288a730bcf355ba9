"""iu-cutter: cut long knowledge-base documents into addressable information units.

The live-execution switch is ``cutter.core.mode.__execution_enabled__``: False unless
an operator turns it on (``cutter.core.mode.enable_execution()`` or the CLI's
``--enable-execution``). While it is off, ``Mode.LIVE`` is refused before
anything is touched. ``cutter.__execution_enabled__`` reads that one flag (the
design's name for it); setting it here changes nothing, use ``enable_execution``.
"""

from cutter.assembly.embedded import embedded_config
from cutter.core.approvals import GatePolicy
from cutter.core.errors import (
    ApprovalConsumedAlready,
    CutterError,
    GateRefusal,
    ProductionExecutionNotAuthorized,
    StopApprovalRequired,
    StopCode,
)
from cutter.core.mode import Mode
from cutter.core.mode import execution_enabled as _execution_enabled
from cutter.core.sidecar import Sidecar
from cutter.core.states import RunState
from cutter.runtime.quiet_logs import quiet_unless_configured
from cutter.walk.runner import Runner, RunnerConfig

__all__ = [
    "ApprovalConsumedAlready",
    "CutterError",
    "GatePolicy",
    "GateRefusal",
    "Mode",
    "ProductionExecutionNotAuthorized",
    "RunState",
    "Runner",
    "RunnerConfig",
    "Sidecar",
    "StopApprovalRequired",
    "StopCode",
    "embedded_config",
]

quiet_unless_configured()


def __getattr__(name: str) -> bool:
    """``cutter.__execution_enabled__``: the live-execution flag, read from its one home."""
    if name == "__execution_enabled__":
        return _execution_enabled()
    raise AttributeError(f"module 'cutter' has no attribute {name!r}")
