"""Variants that keep a known number of cores busy, run through `mlpbench run --variant
tests.thread_variants:X` to prove that a window in which the worker left a core idle is flagged
underused, one in which each sample cost more CPU time is flagged slowed, and one in which
neither happened is neither.

Each trains as the NumPy reference does (so parity holds and it starts without TensorFlow),
then works on for a while in every steady epoch: two threads busy for SECONDS, or one busy for
twice as long while the other sleeps, as a framework's thread pool does in its slow mode.
Hashing a large buffer releases the GIL, so two Python threads really keep two cores busy. The
helper thread is started once, in the warm-up epoch, as a framework starts its pool: a thread
started inside a timed window would share its creator's CPU under the worker's thread placement
(harness/run/affinity.py) until the next window.
The work is timed rather than counted so that a window is long enough for the tick (10 ms)
to resolve its cores on any machine.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time

import numpy as np

from variants.numpy_scratch import NumpyScratch

CHUNK = b"\0" * (1 << 18)  # hashlib lets go of the GIL for any buffer above 2 KiB
SECONDS = 0.3  # of two busy threads per steady epoch; one thread works twice as long


def _hash(seconds: float) -> None:
    h, end = hashlib.sha256(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        h.update(CHUNK)


class _Threads(NumpyScratch):
    """Trains as the reference, then keeps `threads_in(epoch)` threads busy for
    `seconds_in(epoch)` (one thread twice as long when it is one)."""

    def threads_in(self, epoch: int) -> int:
        raise NotImplementedError

    def seconds_in(self, epoch: int) -> float:
        return SECONDS

    def _helper(self) -> None:
        while (seconds := self.work.get()) is not None:
            _hash(seconds)
            self.work.task_done()

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        losses = super().train_epoch(x, y, batch_size)
        # epoch 1 is two calls (the first batch, then the rest) and is the warm-up: kept short
        self.calls = getattr(self, "calls", 0) + 1
        epoch = max(1, self.calls - 1)
        if epoch == 1 and not hasattr(self, "work"):  # the pool, started before any timed window
            self.work: queue.Queue[float | None] = queue.Queue()
            threading.Thread(target=self._helper, daemon=True).start()
        if epoch == 1:  # both threads work once untimed, as a pool does in the first step: the
            self.work.put(SECONDS / 4)  # placement sees them busy before the timed windows
            _hash(SECONDS / 4)
            self.work.join()
        elif epoch > 1:
            seconds = self.seconds_in(epoch)
            if self.threads_in(epoch) == 2:
                self.work.put(seconds)
                _hash(seconds)
            else:  # the helper sleeps, as an idle pool's thread does, while one thread works
                _hash(2 * seconds)
            self.work.join()
        return losses


class AlwaysTwo(_Threads):
    """Two busy threads in every epoch: a clean run, nothing to flag."""

    name = "always_two"
    api_level = "test: two threads"

    def threads_in(self, epoch: int) -> int:
        return 2


class OddEpochsOne(_Threads):
    """Two busy threads in even epochs, one in odd epochs (3, 5, ...): every odd steady window
    leaves a core idle that the even ones use."""

    name = "odd_epochs_one"
    api_level = "test: one thread in odd epochs"

    def threads_in(self, epoch: int) -> int:
        return 1 if epoch % 2 else 2


class OddEpochsDearer(_Threads):
    """Two busy threads in every epoch, working twice as long in odd epochs (3, 5, ...) for the
    same samples: each odd steady window keeps both cores busy and spends more CPU time per
    sample, as a CPU that runs slower does."""

    name = "odd_epochs_dearer"
    api_level = "test: dearer samples in odd epochs"

    def threads_in(self, epoch: int) -> int:
        return 2

    def seconds_in(self, epoch: int) -> float:
        return 2 * SECONDS if epoch % 2 else SECONDS
