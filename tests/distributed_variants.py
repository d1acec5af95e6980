"""Distributed variants that exist only to be run by tests/test_distributed.py."""

from __future__ import annotations

import json
import os
import time
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from variants.base import ModelSpec, Optimizer
from variants.keras_common import KerasFit, compile_model


class Keras3MultiWorker(KerasFit):
    """Keras 3 Sequential + fit under MultiWorkerMirroredStrategy: fails upstream
    (keras-team/keras#20585)."""

    name = "keras3_multiworker"
    api_level = "Keras Sequential + fit under MultiWorkerMirroredStrategy"
    distributed: ClassVar[bool] = True

    def make_model(self, spec: ModelSpec) -> keras.Model:
        return keras.Sequential(
            [
                keras.Input(shape=(spec.input_size,)),
                *[keras.layers.Dense(h, activation="relu") for h in spec.hidden],
                keras.layers.Dense(spec.num_classes),
            ]
        )

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        with self.strategy.scope():
            self.model = self.make_model(spec)
            self.model.set_weights(init_weights)
            compile_model(self.model, optimizer)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        self.model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        return np.zeros(-(-len(x) // batch_size))


class NeverConnects:
    """Rank 0 starts its strategy; every other rank never does (a peer that never starts)."""

    name = "never_connects"
    api_level = "a peer that never starts"
    distributed: ClassVar[bool] = True

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        if json.loads(os.environ["TF_CONFIG"])["task"]["index"] != 0:
            time.sleep(3600)
        tf.distribute.MultiWorkerMirroredStrategy()

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        raise AssertionError("never reached")

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise AssertionError("never reached")

    def get_weights(self) -> list[np.ndarray]:
        raise AssertionError("never reached")
