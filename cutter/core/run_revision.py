"""Compare-and-save, the rule every run store keeps.

A run is stored with its sidecar's ``revision`` (0 when created). ``save`` and
``save_consuming`` write a sidecar only over the revision just before it: saving
revision ``r`` needs the stored run at ``r - 1``. Anything else means another
walker saved first (``RunChanged``), or the run was never created (``UnknownRun``:
saving never creates a run, ``create`` does); either way nothing is saved.
"""

from __future__ import annotations

from cutter.core.errors import RunChanged, UnknownRun


def revision_refusal(run_id: str, stored: int | None, saving: int) -> RunChanged | UnknownRun:
    """Why saving revision ``saving`` over the stored one (None: no such run) fails."""
    if stored is None:
        return UnknownRun(run_id)
    return RunChanged(
        run_id,
        f"run {run_id} changed under this walk (stored revision {stored}, this save"
        f" follows {saving - 1}); nothing was saved",
    )


def check_revision(run_id: str, stored: int | None, saving: int) -> None:
    """Raise ``revision_refusal`` unless ``saving`` is the revision after ``stored``."""
    if stored is None or stored != saving - 1:
        raise revision_refusal(run_id, stored, saving)
