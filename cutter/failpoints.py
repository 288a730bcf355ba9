"""Failpoints for crash tests: the process dies at once at a named point.

Inert unless the environment variable ``CUTTER_FAILPOINT`` names a point when
the process starts; then reaching that point ends the process with
``os._exit(137)`` — no cleanup, no flush, exactly like ``kill -9`` there.

Points: ``before:<phase>`` (a phase about to run), ``after:<phase>`` (its pins
persisted), ``leg_a:mid`` (backup stored, rows not yet written),
``leg_a:written`` (rows written, pins not yet persisted), ``leg_b:appended``
(the cut's ledger entry appended, its anchor not yet recorded), ``enact:mid``
(rows active, source not yet marked cut).
"""

from __future__ import annotations

import os

ENV = "CUTTER_FAILPOINT"
_armed = os.environ.get(ENV)


def failpoint(name: str) -> None:
    if _armed is not None and _armed == name:
        os._exit(137)
