"""One read-back of a change set for both verify phases of a walk segment.

structural_verify reads the change set's rows back from the store (what is stored,
after leg A committed, in one snapshot) and keeps them here; write_verify, later in
the same segment, checks those same stored rows against the plan instead of reading
all of them again. Nothing in the walk writes IU rows between the two phases
(leg_b_record appends to the ledger), and SG_2 reads the rows again before its
approval is consumed (the verify result is recomputed). A segment that starts at
write_verify (a resume after a crash or a drain) finds nothing kept and reads the
rows itself. The rows are handed over once, so nothing is held after write_verify.
"""

from __future__ import annotations

from cutter.core.records import IURow


class ReadBacks:
    """The change set rows structural_verify read back in this walk segment."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: tuple[str, tuple[IURow, ...]] | None = None

    def keep(self, change_set_id: str, rows: tuple[IURow, ...]) -> None:
        self._held = (change_set_id, rows)

    def take(self, change_set_id: str) -> tuple[IURow, ...] | None:
        """The rows kept for ``change_set_id``, once; None if none were kept for it."""
        held, self._held = self._held, None
        if held is None or held[0] != change_set_id:
            return None
        return held[1]
