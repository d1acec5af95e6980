"""The fastest Keras `fit` of wide & deep: every step of the epoch in one execution, compiled by
XLA.

By default `fit` returns to Python after every batch to run the callbacks; with
`steps_per_execution=N` it runs N steps inside one `tf.function` call before it does. Set to the
steps of the whole epoch, Python is crossed once per epoch. `jit_compile=True` then lets XLA
fuse the elementwise work of each step around its matrix products.

The exact loss of every step must still come out, though callbacks now see only the end of
each execution: a metric per output writes each step's loss into a buffer on the device, read
once per epoch.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from variants.wide_deep.keras_common import OUTPUTS
from variants.wide_deep.keras_functional import KerasFunctional

MAX_STEPS = 1 << 16  # steps of one epoch the buffer holds: 60,000 samples at batch size 1


class StepLosses(keras.metrics.Metric):
    """Every step's loss of one output, in order, kept on the device until the epoch ends."""

    def __init__(self, name="step_losses"):
        super().__init__(name=name)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.losses = self.add_variable(shape=(MAX_STEPS,), initializer="zeros", name="losses")
        self.count = self.add_variable(shape=(), dtype="int32", initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        loss = self.loss_fn(y_true, y_pred)
        # in place, one element: the buffer is not copied every step
        self.losses.value.scatter_nd_update([[self.count.value]], [loss])
        self.count.assign_add(1)

    def result(self):
        return self.count


class KerasFitJIT(KerasFunctional):  # the same functional model, trained the fastest way
    name = "keras_fit_jit"
    api_level = "Keras Functional API + fit, steps_per_execution = the epoch, jit_compile=True"
    level, rung = "Keras", 3
    task = "wide-deep"
    jit_compile = True
    steps_per_execution = MAX_STEPS  # one execution runs until the epoch's data ends

    def loss_metrics(self) -> dict[str, list[keras.metrics.Metric]]:
        self.step_losses = {output: StepLosses() for output in OUTPUTS}
        return {output: [metric] for output, metric in self.step_losses.items()}

    def train_epoch(self, x: tuple, y: np.ndarray, batch_size: int) -> tf.Tensor:
        self.fit(x, y, batch_size)
        # fit reset the metrics when the epoch began: the buffers hold this epoch's steps
        steps = -(-len(y) // batch_size)
        main, aux = (self.step_losses[output].losses.value[:steps] for output in OUTPUTS)
        return keras.ops.stack([self.total(main, aux), main, aux], axis=1)  # still on the device
