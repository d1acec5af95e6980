"""The MLP with the Keras functional API (a graph of layers from `keras.Input`), trained with
`model.fit`."""

from __future__ import annotations

import keras

from variants.base import ModelSpec
from variants.keras_common import KerasFit


class KerasFunctional(KerasFit):
    name = "keras_functional"
    api_level = "Keras Functional API + fit"
    level = "Keras"  # as fast as Sequential: a way to build, not a rung

    def make_model(self, spec: ModelSpec) -> keras.Model:
        inputs = keras.Input(shape=(spec.input_size,))
        x = inputs
        for h in spec.hidden:
            x = keras.layers.Dense(h, activation="relu")(x)
        outputs = keras.layers.Dense(spec.num_classes)(x)
        return keras.Model(inputs, outputs)
