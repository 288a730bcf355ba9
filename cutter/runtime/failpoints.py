"""Failpoints for crash tests: the process dies at once at a named point.

Inert unless the environment variable ``CUTTER_FAILPOINT`` names a point when
the process starts; then reaching that point ends the process with
``os._exit(137)`` — no cleanup, no flush, exactly like ``kill -9`` there.
``NAME@N`` dies the N-th time the point is reached (``NAME`` is ``NAME@1``).

Points: ``before:<phase>`` (a phase about to run), ``after:<phase>`` (its pins
persisted), ``leg_a:mid`` (backup stored, rows not yet written),
``leg_a:written`` (rows written, pins not yet persisted), ``leg_b:appended``
(the cut's ledger entry appended, its anchor not yet recorded), ``enact:mid``
(rows active, source not yet marked cut), ``consume:committed`` (the embedded
run store committed the transaction that consumed an approval and saved the
advanced run, the caller not yet told; ``@1`` at SG_1, ``@2`` at SG_2 of a
one-approver walk);
undoing a live run's writes (``cutter.walk.stopping``): ``undo:pending``
(ROLLBACK_PENDING persisted, no row restored), ``undo:restored`` (rows restored,
rollback envelope not yet appended), ``undo:recorded`` (envelope appended, the run not yet ended);
``hook:ran`` (a ``before_*`` hook ran and was recorded, its answer not yet acted on:
``@1`` is leg A's, ``@2`` enact's when each event has one hook).
Notifications (``cutter.daemon.notify``, docs/notifications.md): ``notify:enqueued``
(a webhook delivery about to be POSTed, its notice committed with the run's save) and
``notify:posted`` (the endpoint answered 2xx, the delivery not yet recorded).
A restore run (docs/revert.md) reaches the same points, but for ``leg_a:written`` (its
leg A writes no row); its ``enact:mid`` is rows restored, the cut mark not yet set.
"""

from __future__ import annotations

import os

ENV = "CUTTER_FAILPOINT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition("@")
    return name, int(nth) if nth.isdigit() and int(nth) > 0 else 1


_armed = _parse(os.environ.get(ENV))
_reached = 0


def failpoint(name: str) -> None:
    global _reached
    if _armed is None or _armed[0] != name:
        return
    _reached += 1
    if _reached == _armed[1]:
        os._exit(137)
