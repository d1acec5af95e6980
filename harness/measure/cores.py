"""Cores a worker left idle: the timed windows in which it used fewer cores than it does in its
busiest windows, while the machine had CPUs to spare.

A multi-threaded framework can fall into a slow mode inside one process: the same work at half
the speed, one thread pool doing nothing, and no other process to blame (foreign CPU stays near
zero, so `noisy` does not see it). The worker's own CPU time over a window, divided by its wall
time, is the cores it kept busy; a window of a variant is compared with the busiest windows of
that variant, over every seed, since a whole process can sit in the slow mode.

Both readings are tick-sampled (harness/measure/noise.py): over T seconds on N CPUs each has a
variance of at most N * T * TICK / 4, and each reading is also cut to whole ticks. A window is
only called underused when the shortfall exceeds the threshold with confidence, so a short
window, whose cores the tick cannot resolve, is never flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.measure import noise
from harness.measure.noise import TICK

# A window that kept a quarter of a core less busy than its variant's busiest windows, while
# at least that much CPU stood idle, was slowed by the worker itself. The slow mode seen on 2
# cores leaves 0.5-0.7 core idle; a quarter keeps clear of the wobble of a steady run.
UNDERUSED_CORES = 0.25
# Every steady window of a suite is judged, tens of them per variant: a one-sided 99 % bound
# keeps a clean suite's false flags rare where 95 % would expect one in twenty windows.
_Z_ONE_SIDED_99 = 2.326
# The busiest windows: the upper quartile of a variant's windows by cores used. It lies in the
# fast mode as long as a quarter of the windows are fast, and is not lifted by one lucky tick
# as the maximum would be.
BUSIEST_QUANTILE = 0.75


def cores_used(own: float, seconds: float) -> float:
    """The cores a window kept busy: the worker's CPU seconds over its wall seconds."""
    return own / seconds if seconds > 0 else math.nan


def standard_error(seconds: np.ndarray, cpus: int) -> np.ndarray:
    """Of one window's cores (own or idle) from one pair of readings: tick sampling over the
    window on every CPU, plus the cut of each reading to a whole tick (the difference of two
    cut readings has variance TICK² / 6)."""
    seconds = np.asarray(seconds, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(cpus * seconds * TICK / 4 + TICK**2 / 6) / seconds


def underused(
    own: Sequence[float],
    idle: Sequence[float],
    foreign: Sequence[float],
    seconds: Sequence[float],
    cpus: int,
    threshold: float = UNDERUSED_CORES,
    noisy_threshold: float = noise.NOISY_CORES,
) -> np.ndarray:
    """Which of one variant's steady windows (every seed's) left cores idle that the variant
    used elsewhere: a bool per window.

    The reference is the upper quartile of the windows' cores used; a window is underused when
    (reference - its cores) exceeds `threshold` by 2.326 standard errors (its own and the
    reference's, taken as one window of the median length), and the machine's idle cores in it
    exceed `threshold` by 2.326 of its standard errors: the cores were free, and the worker did
    not use them. A window in which other processes used the CPU is `noisy` (noise.assess on
    that window alone with `noisy_threshold`), not underused: outside load that takes a core
    leaves none idle, and one that comes and goes stalls a thread that its peers then wait for.
    Windows without a reading (NaN) are not judged and do not count in the reference.
    """
    own_a, idle_a, foreign_a, sec = (
        np.asarray(v, dtype=np.float64) for v in (own, idle, foreign, seconds)
    )
    valid = np.isfinite(own_a) & np.isfinite(idle_a) & np.isfinite(sec) & (sec > 0)
    flags = np.zeros(sec.shape, dtype=bool)
    if valid.sum() < 2:  # a slow window can only be told from a fast one
        return flags
    cores = own_a[valid] / sec[valid]
    reference = float(np.quantile(cores, BUSIEST_QUANTILE))
    se_reference = standard_error(np.array([np.median(sec[valid])]), cpus)[0]
    se = standard_error(sec[valid], cpus)
    short = reference - cores - _Z_ONE_SIDED_99 * np.hypot(se, se_reference) > threshold
    spare = idle_a[valid] / sec[valid] - _Z_ONE_SIDED_99 * se > threshold
    quiet = np.array([not noisy_window(f, t, cpus, noisy_threshold)
                      for f, t in zip(foreign_a[valid], sec[valid], strict=True)])  # fmt: skip
    flags[valid] = short & spare & quiet
    return flags


def noisy_window(foreign: float, seconds: float, cpus: int, threshold: float) -> bool:
    """Whether outside load disturbed this one window, by the rule a run is called noisy by;
    a window without a foreign reading is not."""
    if not math.isfinite(foreign):
        return False
    load = noise.assess([foreign], [seconds], threshold=threshold, cpus=cpus)
    return load is not None and load.noisy
