"""The MLP as a `keras.Sequential` stack, trained with `model.fit`."""

from __future__ import annotations

import keras

from variants.base import ModelSpec
from variants.keras_common import KerasFit


class KerasSequential(KerasFit):
    name = "keras_sequential"
    api_level = "Keras Sequential + fit"
    level, rung = "Keras", 0

    def make_model(self, spec: ModelSpec) -> keras.Model:
        return keras.Sequential(
            [
                keras.Input(shape=(spec.input_size,)),
                *[keras.layers.Dense(h, activation="relu") for h in spec.hidden],
                keras.layers.Dense(spec.num_classes),
            ]
        )
