"""Variants with a known extra cost in one part of their step, for tests/test_anatomy.py: the
breakdown must move that part and no other.

HeavyUpdateTF   tf2_function whose Keras optimizer makes EXTRA_PASSES more passes over every
                weight after its Adam update (in the optimizer's own name scope, as its update is)
SleepyTF        tf2_function that sleeps SLEEP seconds in Python after every step: outside the
                framework, so the rest and not any op
(the same two costs on the NumPy reference: tests/anatomy_numpy_variants.py)
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from variants.tf2_tape import TF2Function

EXTRA_PASSES = 30  # each reads and writes every weight once more
SLEEP = 0.004  # seconds per step


class HeavyAdam(keras.optimizers.Adam):
    def update_step(self, gradient, variable, learning_rate):
        super().update_step(gradient, variable, learning_rate)
        for _ in range(EXTRA_PASSES):
            # a pass that cannot be folded away: it depends on the variable and the gradient
            self.assign(variable, variable + 1e-30 * tf.abs(gradient))


class HeavyUpdateTF(TF2Function):
    name = "heavy_update_tf"

    def build(self, spec, optimizer, init_weights, **kwargs):
        super().build(spec, optimizer, init_weights, **kwargs)
        self.optimizer = HeavyAdam.from_config(self.optimizer.get_config())
        self.optimizer.build(self.params)


class SleepyTF(TF2Function):
    name = "sleepy_tf"

    def train_epoch(self, x, y, batch_size):
        losses = []
        for i in range(0, len(x), batch_size):
            losses.append(self.train_step(x[i : i + batch_size], y[i : i + batch_size]))
            time.sleep(SLEEP)
        return tf.stack(losses)
