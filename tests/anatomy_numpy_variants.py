"""The NumPy reference with a known extra cost in one part of its step, for
tests/test_anatomy.py (the TensorFlow ones are tests/anatomy_variants.py; these import no
TensorFlow, so the breakdown must take its NumPy path)."""

from __future__ import annotations

import time

import numpy as np

from variants.numpy_scratch import NumpyScratch

EXTRA_PASSES = 30  # each reads and writes every weight once more
SLEEP = 0.004  # seconds per step


class HeavyUpdateNumpy(NumpyScratch):
    name = "heavy_update_numpy"

    def apply(self, grads):
        super().apply(grads)
        for p, g in zip(self.params, grads, strict=True):
            for _ in range(EXTRA_PASSES):
                p += 1e-30 * np.abs(g)


class SleepyNumpy(NumpyScratch):
    name = "sleepy_numpy"

    def train_epoch(self, x, y, batch_size):
        losses = []
        for i in range(0, len(x), batch_size):
            losses.append(self.train_step(x[i : i + batch_size], y[i : i + batch_size]))
            time.sleep(SLEEP)
        return np.array(losses)
