"""How much memory a suite will need, checked against what the machine has before anything
starts: a run too big for the machine is refused with one line instead of being killed by the
kernel halfway, or ending in a MemoryError after an hour.

The estimate is an upper bound built from the sizes a run really allocates; every factor is
named below so that it can be checked against a worker's `peak_rss_mb`.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

FLOAT = {"float32": 4, "float64": 8}  # bytes of a number, by the dtype a suite trains in
RUNTIME = 1 << 30  # a worker with TensorFlow imported and its thread pools, before any data
# A worker whose variants import only NumPy: Python, NumPy and OpenBLAS' buffers (its address
# space peaked at 197 MB with the harness imported and a 1000x1000 product).
NUMPY_RUNTIME = 256 << 20
# Copies of the parameters a training process holds at once: the variables, their gradients,
# Adam's two slots, the initial weights it was handed and the arrays `get_weights` returns.
PARAM_COPIES = 6
# Copies of the training data in a worker: the task's arrays, an epoch's reordered copy, and
# the framework's own copy of the epoch (a tensor or a dataset).
DATA_COPIES = 3
ACTIVATION_COPIES = 4  # forward values, their gradients, and the framework's temporaries
STEP_RECORD = 600  # bytes the runner keeps per training step (a row of steps.csv) until saved


class MemoryBudgetError(ValueError):
    """The suite needs more memory than the machine has free."""


@dataclass(frozen=True)
class Shape:
    """What sizes memory: the data, the model, the schedule and how many processes at once."""

    n_train: int
    n_test: int
    input_size: int
    hidden: tuple[int, ...]
    num_classes: int
    batch_size: int
    epochs: int
    runs: int  # (variant, seed) pairs: the runner keeps all their steps until the suite ends
    processes: int  # worker processes alive at once (runs at once, times ranks per run)
    dtype: str = "float32"  # what the data, the weights and the activations are held in
    framework: bool = True  # a worker may import TensorFlow (False: NumPy only)

    @property
    def params(self) -> int:
        sizes = (self.input_size, *self.hidden, self.num_classes)
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    @property
    def steps_per_run(self) -> int:
        return self.epochs * math.ceil(self.n_train / self.batch_size)


def worker_bytes(s: Shape) -> int:
    """One worker process at its peak."""
    number = FLOAT[s.dtype]
    data = (s.n_train + s.n_test) * (s.input_size + 1) * number * DATA_COPIES
    params = s.params * number * PARAM_COPIES
    width = s.input_size + sum(s.hidden) + s.num_classes
    # training in batches; the evaluation may push the whole test set through at once
    activations = max(s.batch_size, s.n_test) * width * number * ACTIVATION_COPIES
    return (RUNTIME if s.framework else NUMPY_RUNTIME) + data + params + activations


def suite_bytes(s: Shape) -> int:
    """The runner (its step records) and the workers alive at once."""
    return s.runs * s.steps_per_run * STEP_RECORD + s.processes * worker_bytes(s)


def available_bytes() -> int:
    """Memory the kernel can give without swapping (MemAvailable, or free pages elsewhere)."""
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    return free


def process_limit() -> int | None:
    """The address space each process may map (`ulimit -v`), or None without a limit."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if limit == resource.RLIM_INFINITY else limit


def gib(n: float) -> str:
    return f"{n / (1 << 30):,.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):,.0f} MiB"


def check(s: Shape, available: int | None = None, limit: int | None = None) -> int:
    """The estimate in bytes; raises MemoryBudgetError with the one line to show if it does
    not fit in what is available. `ulimit -v` bounds each process, not the suite: a worker
    is checked against it, the suite's sum against the free memory."""
    need = suite_bytes(s)
    have = available_bytes() if available is None else available
    limit = process_limit() if limit is None else limit
    worker = worker_bytes(s)
    if limit is not None and worker > limit:
        what = "TensorFlow alone maps about 1 GiB" if s.framework else "NumPy and the data"
        raise MemoryBudgetError(
            f"a worker process needs about {gib(worker)} of address space ({what}) and "
            f"`ulimit -v` allows each process {gib(limit)}; raise the limit, or use a smaller "
            "--hidden or dataset"
        )
    if need > have:
        steps = s.runs * s.steps_per_run * STEP_RECORD
        if s.processes > 1 and s.processes * worker > steps:
            biggest = f"{s.processes} worker processes at once, {gib(worker)} each"
            fix = "run fewer at once (a smaller --jobs, or --workers)"
        else:
            biggest = "the model" if worker > steps else "the per-step records of all runs"
            fix = "use fewer --epochs, --seeds, variants or a smaller --hidden"
        raise MemoryBudgetError(
            f"this suite needs about {gib(need)} of memory and {gib(have)} is free "
            f"(largest part: {biggest}); {fix}"
        )
    return need
