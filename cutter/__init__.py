"""iu-cutter: cut long knowledge-base documents into addressable information units.

The live-execution switch is ``cutter.mode.live_execution_enabled``: False unless
an operator turns it on (``cutter.mode.enable_execution()`` or the CLI's
``--enable-execution``). While it is off, ``Mode.LIVE`` is refused before
anything is touched.
"""

from cutter.approvals import GatePolicy
from cutter.errors import (
    ApprovalConsumedAlready,
    CutterError,
    GateRefusal,
    ProductionExecutionNotAuthorized,
    StopApprovalRequired,
    StopCode,
)
from cutter.mode import Mode
from cutter.quiet_logs import quiet_unless_configured
from cutter.runner import Runner, RunnerConfig
from cutter.sidecar import Sidecar
from cutter.sqlite.config import embedded_config
from cutter.states import RunState

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
