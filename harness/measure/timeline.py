"""Isolation: no harness activity (the warm server's start, calibration, the overhead
measurement) may run while a variant is timed. Both sides are stamped with the same clock
(`time.perf_counter`, CLOCK_MONOTONIC, shared by every process of the machine)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def overlaps(
    windows: Iterable[tuple[float, float]], activities: Iterable[Mapping[str, Any]]
) -> list[str]:
    """The activities that overlapped a timed window, each named once."""
    spans = sorted(windows)
    hit = []
    for a in activities:
        start, end = float(a["start"]), float(a["end"])
        if any(w_start < end and start < w_end for w_start, w_end in spans):
            hit.append(str(a["activity"]))
    return hit
