"""The MLP as a `keras.Model` subclass (layers in `__init__`, the forward pass in `call`),
trained with `model.fit`."""

from __future__ import annotations

import keras

from variants.base import ModelSpec
from variants.keras_common import KerasFit


class MLP(keras.Model):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.hidden_layers = [keras.layers.Dense(h, activation="relu") for h in spec.hidden]
        self.out = keras.layers.Dense(spec.num_classes)

    def call(self, x):
        for layer in self.hidden_layers:
            x = layer(x)
        return self.out(x)


class KerasSubclass(KerasFit):
    name = "keras_subclass"
    api_level = "Keras Model subclass + fit"
    level = "Keras"  # as fast as Sequential: a way to build, not a rung

    def make_model(self, spec: ModelSpec) -> keras.Model:
        model = MLP(spec)
        model(keras.ops.zeros((1, spec.input_size)))  # the first call creates the weights
        return model
