"""Cores a worker left idle: the timed windows in which it used fewer cores than it does in its
busiest windows, while the machine had CPUs to spare.

A multi-threaded framework can fall into a slow mode inside one process: the same work at half
the speed, one thread pool doing nothing, and no other process to blame (foreign CPU stays near
zero, so `noisy` does not see it). The worker's own CPU time over a window, divided by its wall
time, is the cores it kept busy; a window of a variant is compared with the busiest windows of
that variant, over every seed, since a whole process can sit in the slow mode.

The machine's idle time is tick-sampled (harness/measure/noise.py): over T seconds on N CPUs it
has a variance of at most N * T * TICK / 4, and each reading is also cut to whole ticks. The
worker's own CPU time is not sampled: `os.times()` and /proc/PID/stat give a process' exact
scheduler runtime (the kernel scales its tick-sampled split into user and system time to it),
cut to whole ticks. A window is only called underused when the shortfall exceeds the threshold
with confidence, so a short window, whose cores the tick cannot resolve, is never flagged.

The second way a window of the same work runs slow: every core busy as in the other windows,
but each sample cost more CPU time (`slowed`). The CPU itself ran slower: on a virtual machine
the host can run a guest's virtual CPU at two speeds (measured here: a single pinned thread's
fixed loop took 0.102 s or 0.189 s per batch in phases of about a second, its CPU time equal to
its wall time throughout), which nothing inside the guest can see or control but this.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.measure import noise
from harness.measure.noise import TICK

# A window that kept 0.15 core less busy than its variant's busiest windows, while at least that
# much CPU stood idle, was slowed by the worker itself. The slow mode seen on 2 cores leaves
# 0.4-0.9 core idle over a whole window, 0.14-0.21 over a window it fills in part; the steady
# windows of every default variant, read exactly, lie within 0.07 core of each other (Fashion-
# MNIST 784-512-256, 10 epochs x 5 seeds, three suites: no window within +-10 % of its variant's
# median speed is flagged at 0.15 or at 0.10, and 0.10 catches no slow window more).
UNDERUSED_CORES = 0.15
# Every steady window of a suite is judged, tens of them per variant: a one-sided 99 % bound
# keeps a clean suite's false flags rare where 95 % would expect one in twenty windows.
_Z_ONE_SIDED_99 = 2.326
# The busiest windows: the upper quartile of a variant's windows by cores used. It lies in the
# fast mode as long as a quarter of the windows are fast, and is not lifted by one lucky tick
# as the maximum would be.
BUSIEST_QUANTILE = 0.75
# A window slower than its variant's median window by more than the band a steady variant's
# windows must hold (harness/report/data.py REPEATABLE_BAND), in which each sample cost the
# worker more CPU time by at least half the band: the dearer CPU explains most of the loss.
# Half, not the whole band: a window 10 % slow whose cores stayed busy (0.98 of them) cost 9 %
# more per sample, and the rest was its cores.
SLOWED_FRACTION = 0.10
# Own CPU readings in one window's difference, each cut to a whole tick: this process, and the
# other ranks of a data-parallel run (two at most on 2 cores).
_OWN_READINGS = 3


def cores_used(own: float, seconds: float) -> float:
    """The cores a window kept busy: the worker's CPU seconds over its wall seconds."""
    return own / seconds if seconds > 0 else math.nan


def standard_error(seconds: np.ndarray, cpus: int) -> np.ndarray:
    """Of one window's idle (or busy) cores from one pair of readings: tick sampling over the
    window on every CPU, plus the cut of each reading to a whole tick (the difference of two
    cut readings has variance TICK² / 6)."""
    seconds = np.asarray(seconds, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(cpus * seconds * TICK / 4 + TICK**2 / 6) / seconds


def own_standard_error(seconds: np.ndarray) -> np.ndarray:
    """Of one window's cores from the worker's own CPU time: the cut of its readings to whole
    ticks (TICK² / 6 per difference of two cut readings), for this process and its peers."""
    seconds = np.asarray(seconds, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(_OWN_READINGS * TICK**2 / 6) / seconds


def underused(
    own: Sequence[float],
    idle: Sequence[float],
    foreign: Sequence[float],
    seconds: Sequence[float],
    cpus: int,
    threshold: float = UNDERUSED_CORES,
    noisy_threshold: float = noise.NOISY_CORES,
    samples: Sequence[float] | None = None,
    band: float = SLOWED_FRACTION,
) -> np.ndarray:
    """Which of one variant's steady windows (every seed's) left cores idle that the variant
    used elsewhere: a bool per window.

    The reference is the upper quartile of the windows' cores used; a window is underused when
    (reference - its cores) exceeds `threshold` by 2.326 standard errors (its own and the
    reference's, taken as one window of the median length), and the machine's idle cores in it
    exceed `threshold` by 2.326 of its standard errors: the cores were free, and the worker did
    not use them. Given the windows' `samples`, a window is also underused when it fell below
    the band (`band`, relative, under the variant's median window's speed) and the cores it left
    idle explain at least half of that: (reference - its cores) / reference exceeds band / 2 by
    2.326 standard errors, with as many cores free (the rule `slowed` applies to CPU time per
    sample). A window in which other processes used the CPU is `noisy` (noise.assess on
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
    limit = np.full(cores.shape, threshold)
    speed = np.full(cores.shape, np.nan)
    if samples is not None:
        speed = np.asarray(samples, dtype=np.float64)[valid] / sec[valid]
    if np.isfinite(speed).any():  # below the band: idle cores that explain half of it suffice
        slow = speed < np.nanmedian(speed) * (1 - band)
        limit[slow] = np.minimum(threshold, band / 2 * reference)
    se_reference = own_standard_error(np.array([np.median(sec[valid])]))[0]
    se_own = own_standard_error(sec[valid])
    short = reference - cores - _Z_ONE_SIDED_99 * np.hypot(se_own, se_reference) > limit
    se_idle = standard_error(sec[valid], cpus)
    spare = idle_a[valid] / sec[valid] - _Z_ONE_SIDED_99 * se_idle > limit
    quiet = np.array([not noisy_window(f, t, cpus, noisy_threshold)
                      for f, t in zip(foreign_a[valid], sec[valid], strict=True)])  # fmt: skip
    flags[valid] = short & spare & quiet
    return flags


def slowed(
    own: Sequence[float],
    samples: Sequence[float],
    foreign: Sequence[float],
    seconds: Sequence[float],
    cpus: int,
    underused_flags: Sequence[bool],
    threshold: float = SLOWED_FRACTION,
    noisy_threshold: float = noise.NOISY_CORES,
) -> np.ndarray:
    """Which of one variant's steady windows (every seed's) did the same work at a higher CPU
    cost and ran slower for it: a bool per window.

    The reference is the variant's median window, over the windows that are neither underused
    nor disturbed by outside load: its own CPU seconds per sample, and its samples per second.
    A window is slowed when it trained fewer samples per second than the reference by more than
    `threshold` (relative), and its CPU seconds per sample exceed the reference's by more than
    half of `threshold` beyond 2.326 standard errors of its own CPU reading. Underused and noisy
    windows are not judged (their cause is named already); windows without a reading (NaN) are
    not judged either.
    """
    own_a, samples_a, foreign_a, sec = (
        np.asarray(v, dtype=np.float64) for v in (own, samples, foreign, seconds)
    )
    flags = np.zeros(sec.shape, dtype=bool)
    valid = np.isfinite(own_a) & np.isfinite(samples_a) & np.isfinite(sec)
    valid &= (sec > 0) & (samples_a > 0) & (own_a > 0)
    valid &= ~np.asarray(underused_flags, dtype=bool)
    valid[valid] = [not noisy_window(f, t, cpus, noisy_threshold)
                    for f, t in zip(foreign_a[valid], sec[valid], strict=True)]  # fmt: skip
    if valid.sum() < 2:  # a slow window can only be told from a normal one
        return flags
    cost = own_a[valid] / samples_a[valid]  # CPU seconds per sample
    speed = samples_a[valid] / sec[valid]
    reference_cost, reference_speed = float(np.median(cost)), float(np.median(speed))
    se = own_standard_error(sec[valid]) * sec[valid] / samples_a[valid]  # of `cost`
    dearer = cost - _Z_ONE_SIDED_99 * se > reference_cost * (1 + threshold / 2)
    flags[valid] = dearer & (speed < reference_speed * (1 - threshold))
    return flags


def noisy_window(foreign: float, seconds: float, cpus: int, threshold: float) -> bool:
    """Whether outside load disturbed this one window, by the rule a run is called noisy by;
    a window without a foreign reading is not."""
    if not math.isfinite(foreign):
        return False
    load = noise.assess([foreign], [seconds], threshold=threshold, cpus=cpus)
    return load is not None and load.noisy
