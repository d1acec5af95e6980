"""keras_sequential made slower on purpose by a known fraction, to prove what a suite with the
default seeds resolves: each epoch trains exactly as keras_sequential does (parity holds), then
keeps the main thread busy for a fixed fraction of the time the training took, so the epoch
takes that fraction longer whatever the machine's speed. Busy, not asleep: a sleeping worker
leaves its cores idle and would be flagged underused rather than measured slower.

Both stand on keras_sequential's ladder, above it: 3 % slower than keras_sequential (rung 1),
then 15 % slower than it (rung 2, 1.15 / 1.03 times as slow as rung 1), so the report judges
each against the rung below it, measured in the same suite.
"""

from __future__ import annotations

import time

import numpy as np

from variants.keras_sequential import KerasSequential


class _Slowed(KerasSequential):
    level = "Keras"
    slowdown = 0.0  # the epoch takes (1 + slowdown) times as long as keras_sequential's

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        start = time.perf_counter()
        losses = super().train_epoch(x, y, batch_size)
        end = time.perf_counter() + self.slowdown * (time.perf_counter() - start)
        while time.perf_counter() < end:
            pass
        return losses


class Slower3(_Slowed):
    name, rung, slowdown = "keras_slower3", 1, 0.03


class Slower15(_Slowed):
    name, rung, slowdown = "keras_slower15", 2, 0.15
