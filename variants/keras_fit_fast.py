"""The fastest Keras `fit`: every step of the epoch in one execution, then compiled by XLA.

By default `fit` returns to Python after every batch to run the callbacks; with
`steps_per_execution=N` it runs N steps inside one `tf.function` call before it does. Set to the
steps of the whole epoch, Python is crossed once per epoch. `jit_compile=True` then lets XLA
fuse the elementwise work of each step around its matrix products.

The exact loss of every step must still come out, though callbacks now see only the end of
each execution: a metric writes each step's loss into a buffer on the device, read once per
epoch.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from variants.base import ModelSpec, Optimizer
from variants.keras_common import compile_model
from variants.keras_sequential import KerasSequential

MAX_STEPS = 1 << 16  # steps of one epoch the buffer holds: 60,000 samples at batch size 1


class StepLosses(keras.metrics.Metric):
    """Every step's loss, in order, kept on the device until the epoch ends."""

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


class KerasFitSPE(KerasSequential):
    name = "keras_fit_spe"
    api_level = "Keras Sequential + fit, steps_per_execution = the epoch"
    level, rung = "Keras", 2
    jit_compile = False

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        keras.config.set_floatx(spec.dtype)  # losses, metrics, the optimizer's learning rate
        keras.config.set_dtype_policy(spec.dtype)  # layers (fixed once the first is made)
        self.model = self.make_model(spec)
        self.model.set_weights(init_weights)
        self.step_losses = StepLosses()
        compile_model(
            self.model,
            optimizer,
            metrics=[self.step_losses],
            jit_compile=self.jit_compile,
            # one execution runs until the epoch's data ends
            steps_per_execution=MAX_STEPS,
        )

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.Tensor:
        self.model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        # fit reset the metric when the epoch began: the buffer holds this epoch's steps
        return self.step_losses.losses.value[: -(-len(x) // batch_size)]


class KerasFitJIT(KerasFitSPE):
    name = "keras_fit_jit"
    api_level = "Keras Sequential + fit, steps_per_execution = the epoch, jit_compile=True"
    level, rung = "Keras", 3
    jit_compile = True
