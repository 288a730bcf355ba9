"""Which notices a run store has committed already, so a save does not insert them again.

A store inserts ``notices_for(sidecar)`` with every save; most saves of a run repeat the
notices of the one before (the gate opened, the approvals used). Inserting them again
is harmless (``ON CONFLICT DO NOTHING``) but costs a statement per notice per save. A
notice id this process saw committed is in the outbox for good (nothing deletes it), so
``fresh`` leaves it out; ``committed`` is told only after the transaction committed, so a
save that was refused or rolled back leaves nothing marked. The memory is per open run:
a run saved in a terminal state is forgotten.
"""

from __future__ import annotations

from cutter.core.notices import Notice, notices_for
from cutter.core.sidecar import Sidecar
from cutter.core.states import TERMINAL


class Enqueued:
    def __init__(self) -> None:
        self._known: dict[str, set[str]] = {}

    def fresh(self, sidecar: Sidecar) -> list[Notice]:
        """The notices of ``sidecar`` not known to be committed."""
        known = self._known.get(sidecar.run_id, set())
        return [n for n in notices_for(sidecar) if n.notice_id not in known]

    def committed(self, sidecar: Sidecar, notices: list[Notice]) -> None:
        """``notices`` of ``sidecar`` are committed (call after the commit)."""
        if sidecar.state in TERMINAL:
            self._known.pop(sidecar.run_id, None)
            return
        self._known.setdefault(sidecar.run_id, set()).update(n.notice_id for n in notices)
