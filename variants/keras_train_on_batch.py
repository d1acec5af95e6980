"""The MLP as a `keras.Sequential` stack, trained by a Python loop of `model.train_on_batch`."""

from __future__ import annotations

import keras
import numpy as np

from variants.base import ModelSpec, Optimizer
from variants.keras_common import compile_model
from variants.keras_sequential import KerasSequential


class KerasTrainOnBatch(KerasSequential):
    name = "keras_train_on_batch"
    api_level = "Keras train_on_batch loop"
    level, rung = "Keras", 1

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        keras.config.set_floatx(spec.dtype)  # losses, metrics, the optimizer's learning rate
        keras.config.set_dtype_policy(spec.dtype)  # layers (fixed once the first is made)
        self.model = self.make_model(spec)
        self.model.set_weights(init_weights)
        compile_model(self.model, optimizer)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        # train_on_batch resets the metrics first, so the loss it returns is this batch's alone.
        losses = []
        for s in range(0, len(x), batch_size):
            losses.append(self.model.train_on_batch(x[s : s + batch_size], y[s : s + batch_size]))
        return np.array(losses)
