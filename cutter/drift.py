"""Drift: do the pins taken before a pause still describe the world? (pure)"""

from __future__ import annotations

from collections.abc import Mapping

from cutter.sidecar import DriftItem
from cutter.walk import Pin, PinValue, same_pin


def compare(
    before: Mapping[Pin, PinValue], observed: Mapping[Pin, PinValue]
) -> tuple[DriftItem, ...]:
    """One item per observed pin whose value differs from the pinned one."""
    return tuple(
        DriftItem(pin=pin.value, before=str(before.get(pin)), after=str(value))
        for pin, value in sorted(observed.items())
        if pin not in before or not same_pin(before[pin], value)
    )
