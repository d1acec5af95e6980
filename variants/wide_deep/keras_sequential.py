"""Wide & deep as a `keras.Sequential` stack: not expressible.

A Sequential model passes one tensor through one layer after another. Wide & deep has a second
input, concatenates it with the deep path's last layer, and has a second output: `build` tries
the stack a user would write and reports why Keras refuses it."""

from __future__ import annotations

import keras
import numpy as np

from variants.base import CONTROLLED, AsWritten, NotExpressible, Optimizer, WideDeepSpec

REASON = (
    "keras.Sequential passes one tensor through one layer after another: it has no second "
    "input, cannot concatenate the wide input with the deep path, and has no second output"
)


class KerasSequential:
    name = "keras_sequential"
    api_level = "Keras Sequential + fit"
    level, rung = "Keras", 0
    task = "wide-deep"

    def build(
        self,
        spec: WideDeepSpec,
        optimizer: Optimizer,
        init_weights: list[np.ndarray] | None,
        *,
        as_written: AsWritten = CONTROLLED,
    ) -> None:
        try:
            keras.Sequential(
                [
                    keras.Input(shape=(spec.wide_size,), name="wide"),
                    keras.Input(shape=(spec.input_size,), name="deep"),
                    *[keras.layers.Dense(h, activation="relu") for h in spec.hidden],
                    keras.layers.Concatenate(),
                    keras.layers.Dense(spec.num_classes, name="main"),
                ]
            )
        except ValueError as exc:
            keras_says = " ".join(str(exc).split())  # one line
            raise NotExpressible(
                f"{REASON} (Keras: {keras_says})" if len(keras_says) < 200 else REASON
            ) from exc
        raise NotExpressible(REASON)  # should Keras ever accept the stack, it still has one output

    def train_epoch(self, x: tuple, y: np.ndarray, batch_size: int) -> np.ndarray:
        raise NotExpressible(REASON)

    def predict(self, x: tuple) -> np.ndarray:
        raise NotExpressible(REASON)

    def get_weights(self) -> list[np.ndarray]:
        raise NotExpressible(REASON)
