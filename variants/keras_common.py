"""What the Keras `fit` variants share: the optimizer, compile, and fit with the loss of every step.

They differ only in how the model is built, which each variant's `make_model` does."""

from __future__ import annotations

from abc import ABC, abstractmethod

import keras
import numpy as np

from variants.base import CONTROLLED, AsWritten, ModelSpec, Optimizer
from variants.keras_optimizers import keras_optimizer


def compile_model(
    model: keras.Model,
    optimizer: Optimizer,
    metrics=None,
    jit_compile=False,
    defaults=False,
    **options,
) -> None:
    model.compile(
        optimizer=keras_optimizer(optimizer, defaults),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=metrics,
        # "auto" turns XLA on when a GPU is visible; XLA is measured by a variant of its own.
        jit_compile=jit_compile,
        **options,
    )


class BatchLoss(keras.metrics.Metric):
    """The loss of the current batch only: `logs["loss"]` is the running mean of the epoch."""

    def __init__(self, name="batch_loss"):
        super().__init__(name=name)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.value = self.add_variable(shape=(), initializer="zeros", name="value")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.value.assign(self.loss_fn(y_true, y_pred))

    def result(self):
        return self.value


class KerasFit(ABC):
    """A Keras model trained with `model.fit`; subclasses say how the model is built."""

    @abstractmethod
    def make_model(self, spec: ModelSpec) -> keras.Model: ...

    def build(
        self,
        spec: ModelSpec,
        optimizer: Optimizer,
        init_weights: list[np.ndarray] | None,
        *,
        as_written: AsWritten = CONTROLLED,
    ) -> None:
        keras.config.set_floatx(spec.dtype)  # losses, metrics, the optimizer's learning rate
        keras.config.set_dtype_policy(spec.dtype)  # layers (fixed once the first is made)
        if as_written.seed is not None:  # as written: Python's, NumPy's and TF's RNG at once
            keras.utils.set_random_seed(as_written.seed)
        self.model = self.make_model(spec)  # Keras' own initializers: Glorot kernels, zero biases
        if init_weights is not None:
            self.model.set_weights(init_weights)
        compile_model(
            self.model, optimizer, metrics=[BatchLoss()], defaults=as_written.optimizer_defaults
        )
        self.shuffle = as_written.shuffle

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        losses = []
        keep = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: losses.append(logs["batch_loss"])
        )
        self.model.fit(
            x, y, batch_size=batch_size, epochs=1, shuffle=self.shuffle, verbose=0, callbacks=[keep]
        )
        return np.array(losses)

    def predict(self, x: np.ndarray) -> np.ndarray:
        # One forward call, as the `predict` docstring advises when the input fits in one batch.
        return keras.ops.convert_to_numpy(self.model(x))

    def get_weights(self) -> list[np.ndarray]:
        return self.model.get_weights()
