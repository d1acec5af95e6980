"""Wide & deep as a `keras.Model` subclass (layers in `__init__`, the forward pass of the pair
in `call`), trained with `model.fit`."""

from __future__ import annotations

import keras

from variants.base import WideDeepSpec
from variants.wide_deep.keras_common import KerasFit, hidden_names


class WideDeep(keras.Model):
    def __init__(self, spec: WideDeepSpec):
        super().__init__()
        self.hidden_layers = [
            keras.layers.Dense(size, activation="relu", name=name)
            for size, name in zip(spec.hidden, hidden_names(spec), strict=True)
        ]
        self.main = keras.layers.Dense(spec.num_classes, name="main")
        self.aux = keras.layers.Dense(spec.num_classes, name="aux")

    def call(self, inputs):
        wide, h = inputs
        for layer in self.hidden_layers:
            h = layer(h)
        main = self.main(keras.ops.concatenate([wide, h], axis=1))
        return {"main": main, "aux": self.aux(h)}


class KerasSubclass(KerasFit):
    name = "keras_subclass"
    api_level = "Keras Model subclass + fit"
    level = "Keras"  # as fast as the functional model: a way to build, not a rung
    task = "wide-deep"

    def make_model(self, spec: WideDeepSpec) -> keras.Model:
        model = WideDeep(spec)
        # the first call creates the weights
        model((keras.ops.zeros((1, spec.wide_size)), keras.ops.zeros((1, spec.input_size))))
        return model
