"""Wide & deep with the Keras functional API: two `keras.Input`s, the deep path, the wide input
concatenated to its last layer, two named outputs; trained with `model.fit`."""

from __future__ import annotations

import keras

from variants.base import WideDeepSpec
from variants.wide_deep.keras_common import KerasFit, hidden_names


class KerasFunctional(KerasFit):
    name = "keras_functional"
    api_level = "Keras Functional API + fit"
    level = "Keras"  # as fast as the subclass: a way to build, not a rung
    task = "wide-deep"

    def make_model(self, spec: WideDeepSpec) -> keras.Model:
        wide = keras.Input(shape=(spec.wide_size,), name="wide")
        deep = keras.Input(shape=(spec.input_size,), name="deep")
        h = deep
        for size, name in zip(spec.hidden, hidden_names(spec), strict=True):
            h = keras.layers.Dense(size, activation="relu", name=name)(h)
        main = keras.layers.Dense(spec.num_classes, name="main")(
            keras.layers.Concatenate()([wide, h])
        )
        aux = keras.layers.Dense(spec.num_classes, name="aux")(h)
        return keras.Model(inputs=[wide, deep], outputs={"main": main, "aux": aux})
