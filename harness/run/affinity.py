"""Each of a worker's threads on a CPU of its own, in turn: the setting that keeps a
multi-threaded variant's epochs at one speed.

Left to the kernel, the busy threads of a TensorFlow process on a 2-core machine share one CPU
in about half the epochs while the other stands idle (one core's speed instead of 1.6 cores':
Keras `fit` of 784-512-256-10 at 10-11k samples/s instead of 16-17k, from one epoch to the
next, whatever the sizes of TensorFlow's thread pools). Pinning only TensorFlow's named threads
(`tf_Compute`, `tf_graph_runner`) leaves it; pinning every thread of the process, one CPU each
in turn, removed it in 16 epochs of 16 (README, "Same work, same speed").

A thread started later inherits the affinity of the thread that starts it: one a variant starts
inside a timed window shares its creator's CPU for the rest of that window (a pool started once,
as frameworks start theirs, does not); the worker pins again before every timed window, so it
is placed from the next one.
Users can do the same in their own training: `pin_threads()` after the model's first step.
"""

from __future__ import annotations

import os
from collections import Counter

MODES = ("round-robin", "none")  # `mlpbench run --thread-affinity`

# The CPUs the process may use, read once, before any pinning: afterwards the calling thread's
# own mask is a single CPU.
try:
    ALLOWED = sorted(os.sched_getaffinity(0))
except (AttributeError, OSError):
    ALLOWED = []


# Each thread's CPU ticks at the last placement: the busiest threads are those that computed
# since then, so that a pool thread that has just started working is placed ahead of threads
# that worked long ago (the import's, an idle library pool's) however little it has used yet.
_LAST: dict[int, int] = {}


def pin_threads() -> dict[str, int]:
    """Every thread of this process on one CPU of those it may use, in turn, the busiest first:
    by the CPU time each used since the last placement, then by all it has used (a pool thread
    that rested in the last window still ranks above threads that never compute). The threads
    that compute land on different CPUs whatever their ids. Returns how many threads of each
    name were placed ({} where Linux' per-thread affinity is not available, or with one CPU)."""
    cpus = ALLOWED
    if len(cpus) < 2:
        return {}
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return {}
    used = {tid: _cpu_ticks(tid) for tid in tids}
    recent = {tid: used[tid] - _LAST.get(tid, 0) for tid in tids}
    _LAST.clear()
    _LAST.update(used)
    placed: Counter[str] = Counter()
    for i, tid in enumerate(sorted(tids, key=lambda t: (-recent[t], -used[t], t))):
        try:
            os.sched_setaffinity(tid, {cpus[i % len(cpus)]})
            with open(f"/proc/self/task/{tid}/comm") as f:
                placed[f.read().strip()] += 1
        except OSError:  # a thread that ended meanwhile
            continue
    return dict(placed)


def _cpu_ticks(tid: int) -> int:
    """User and system clock ticks the thread has used (0 if it has ended)."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    except (OSError, IndexError, ValueError):
        return 0
