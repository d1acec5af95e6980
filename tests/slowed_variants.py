"""keras_sequential made slower on purpose by a known fraction, to prove what a suite with the
default seeds resolves: each epoch trains exactly as keras_sequential does (parity holds), then
keeps the main thread busy for a fixed fraction of the time the training took, so the epoch
takes that fraction longer whatever the machine's speed. Busy, not asleep: a sleeping worker
leaves its cores idle and would be flagged underused rather than measured slower.

Each slowed variant has a ladder of its own whose bottom rung is an unchanged twin, so the
report judges it against a twin that ran in the same suite, rung over rung.
"""

from __future__ import annotations

import time

import numpy as np

from variants.keras_sequential import KerasSequential


class _Slowed(KerasSequential):
    slowdown = 0.0  # the epoch takes (1 + slowdown) times as long as keras_sequential's

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        start = time.perf_counter()
        losses = super().train_epoch(x, y, batch_size)
        end = time.perf_counter() + self.slowdown * (time.perf_counter() - start)
        while time.perf_counter() < end:
            pass
        return losses


class Twin15(_Slowed):
    name, level, rung = "keras_twin15", "15 % slower", 0


class Slower15(_Slowed):
    name, level, rung, slowdown = "keras_slower15", "15 % slower", 1, 0.15


class Twin3(_Slowed):
    name, level, rung = "keras_twin3", "3 % slower", 0


class Slower3(_Slowed):
    name, level, rung, slowdown = "keras_slower3", "3 % slower", 1, 0.03
