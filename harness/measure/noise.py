"""Outside load during a timed window: the CPU time other processes used while a variant trained.

On a 2-core machine any second busy process can halve what a variant reaches, and the timing
alone cannot tell. The kernel's /proc/stat counts the busy time of every CPU in clock ticks
(1/100 s); the worker's own CPU time comes from `os.times()`. Their difference, over the same
window, is what everything else on the machine used: other processes, interrupts, and the time
a hypervisor took from this guest (steal). The same two readings give the worker's own CPU
time and the machine's idle time over the window (harness/measure/cores.py judges them).

Tick accounting is sampling: at every tick the whole tick is charged to whatever runs then. The
estimate is unbiased but coarse on short windows, so every figure carries its standard error
and a run is only called noisy when the foreign load is above the threshold with confidence.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

# Columns of the aggregate "cpu" line of /proc/stat that are busy time (man 5 proc): user nice
# system idle iowait irq softirq steal guest guest_nice. guest time is already inside user.
_BUSY = (0, 1, 2, 5, 6, 7)
# The rest: time no CPU spent on anything (iowait is idle time while some I/O was pending).
_IDLE = (3, 4)
TICK = 1.0 / os.sysconf("SC_CLK_TCK")
NOISY_CORES = 0.10  # foreign CPU above a tenth of one core makes a timing doubtful
_Z_ONE_SIDED_95 = 1.645


def _machine_seconds() -> tuple[float | None, float | None]:
    """Busy and idle CPU seconds of the whole machine since boot, summed over its CPUs, from
    one read of /proc/stat; (None, None) where it is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None, None
    if not fields or fields[0] != "cpu":
        return None, None

    def total(columns: tuple[int, ...]) -> float:
        return sum(int(fields[1 + i]) for i in columns if 1 + i < len(fields)) * TICK

    return total(_BUSY), total(_IDLE)


# A data-parallel run is several processes on this machine: their CPU is the run's own, not
# outside load. Its supervisor writes their pids, one per line, to the file this names.
PEERS_FILE = "MLPBENCH_PEERS_FILE"


def _peers() -> list[int]:
    path = os.environ.get(PEERS_FILE)
    if not path:
        return []
    try:
        with open(path, encoding="ascii") as f:
            return [int(line) for line in f if line.strip() and int(line) != os.getpid()]
    except (OSError, ValueError):
        return []  # not written yet: the ranks are still starting


def _process_seconds(pid: int) -> float:
    """utime + stime of another process (man 5 proc); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK  # fields 14 and 15 of the whole line


def _own_seconds() -> float:
    """CPU seconds of this process, and of the other processes of its run."""
    t = os.times()
    return t.user + t.system + sum(_process_seconds(pid) for pid in _peers())


@dataclass(frozen=True)
class Reading:
    busy: float | None
    own: float
    idle: float | None = None


def read() -> Reading:
    """Take one reading; two readings around a window give its foreign, own and idle CPU
    seconds."""
    busy, idle = _machine_seconds()
    return Reading(busy, _own_seconds(), idle)


def foreign_seconds(start: Reading, end: Reading) -> float | None:
    """CPU seconds the rest of the machine used between two readings of this process (may be
    slightly negative on a short window: both sides are sampled by the tick)."""
    if start.busy is None or end.busy is None:
        return None
    return (end.busy - start.busy) - (end.own - start.own)


def own_seconds(start: Reading, end: Reading) -> float:
    """CPU seconds this process (all its threads) and its run's peers used between two
    readings."""
    return end.own - start.own


def idle_seconds(start: Reading, end: Reading) -> float | None:
    """CPU seconds the machine's CPUs spent idle between two readings (over all CPUs: two
    idle CPUs for one second are 2.0)."""
    if start.idle is None or end.idle is None:
        return None
    return end.idle - start.idle


@dataclass(frozen=True)
class Load:
    """The foreign load over a run's timed windows, in cores (1.0 = one core fully busy)."""

    cores: float
    standard_error: float
    noisy: bool


def assess(
    foreign: Sequence[float | None],
    seconds: Sequence[float],
    threshold: float = NOISY_CORES,
    cpus: int | None = None,
) -> Load | None:
    """Pool the windows of a run: foreign cores = sum(foreign) / sum(seconds).

    The standard error follows from tick sampling: each CPU-tick in the windows is a Bernoulli
    draw of busy or idle, so the busy time of one CPU over T seconds has variance at most
    T * TICK / 4, and two readings (machine and own) double it. A run is noisy when the load
    exceeds `threshold` by 1.645 standard errors (one-sided 95 %): a short window can only be
    called noisy by a load large enough to show through the tick.
    """
    pairs = [(f, s) for f, s in zip(foreign, seconds, strict=True) if f is not None]
    total = sum(s for _, s in pairs)
    if not pairs or total <= 0:
        return None
    cpus = cpus or os.cpu_count() or 1
    cores = sum(f for f, _ in pairs) / total
    se = math.sqrt(2 * cpus * total * TICK / 4) / total
    return Load(cores=cores, standard_error=se, noisy=cores - _Z_ONE_SIDED_95 * se > threshold)
