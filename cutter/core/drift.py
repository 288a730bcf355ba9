"""Drift: do the pins taken before a pause still describe the world? (pure)"""

from __future__ import annotations

from collections.abc import Mapping

from cutter.core.review import named_units
from cutter.core.route import Pin, PinValue, same_pin
from cutter.core.sidecar import DriftItem


def compare(
    before: Mapping[Pin, PinValue], observed: Mapping[Pin, PinValue]
) -> tuple[DriftItem, ...]:
    """One item per observed pin whose value differs from the pinned one."""
    return tuple(
        DriftItem(pin=pin.value, before=str(before.get(pin)), after=str(value))
        for pin, value in sorted(observed.items())
        if pin not in before or not same_pin(before[pin], value)
    )


LABEL_CHARS = 40


def drift_message(items: tuple[DriftItem, ...]) -> str:
    """One line: the pins that drifted and, where known, the units behind them
    (``drift in verify_result_id (changed Article 4)``), a few named per pin."""
    parts = []
    for item in items:
        units = [
            f"{u.change} {u.label if len(u.label) <= LABEL_CHARS else u.label[:LABEL_CHARS] + '…'}"
            for u in item.units
        ]
        parts.append(f"{item.pin} ({named_units(units)})" if units else item.pin)
    return "drift in " + "; ".join(parts)
