"""Every registered variant honours the contract in variants/base.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

import variants
from harness.run import cluster
from variants.base import Adam, Variant

from .conftest import BATCH, EPOCHS


# distributed variants start TensorFlow their own way: in fresh processes (test_distributed.py)
@pytest.mark.parametrize(
    "name", [n for n in variants.REGISTRY if cluster.layout(variants.REGISTRY[n]) == "single"]
)
def test_variant_contract(name, digits_task):
    cls = variants.load(name)
    assert cls.name == name
    v = cls()
    assert isinstance(v, Variant)
    before = [w.copy() for w in digits_task.init_weights]
    v.build(digits_task.spec, Adam(lr=1e-3), digits_task.init_weights)

    # The weights it starts from are exactly the harness' weights.
    for got, want in zip(v.get_weights(), digits_task.init_weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)

    epoch_means = []
    for epoch in range(EPOCHS):
        x, y = digits_task.epoch_data(epoch)
        losses = np.asarray(v.train_epoch(x, y, BATCH))
        assert losses.shape == (math.ceil(len(x) / BATCH),)
        assert np.all(np.isfinite(losses))
        epoch_means.append(losses.mean())
    assert epoch_means[-1] < epoch_means[0] - 0.1, f"loss did not fall: {epoch_means}"

    logits = np.asarray(v.predict(digits_task.x_test))
    assert logits.shape == (len(digits_task.x_test), 10)
    assert np.all(np.isfinite(logits))

    weights = v.get_weights()
    assert [tuple(np.shape(w)) for w in weights] == digits_task.spec.weight_shapes
    assert sum(np.size(w) for w in weights) == digits_task.spec.param_count
    # Training changed the weights, and never the arrays the harness handed over.
    assert not np.allclose(np.asarray(weights[0]), before[0])
    for w, b in zip(digits_task.init_weights, before, strict=True):
        np.testing.assert_array_equal(w, b)


@pytest.mark.parametrize("name", ["tf1_graph", "tf1_lowlevel"])
def test_tf1_variants_leave_eager_mode_usable(name, digits_task):
    """Graph-mode variants build in a graph of their own; eager TensorFlow and Keras still work
    in the same process afterwards (disable_eager_execution would break them for good)."""
    import keras
    import tensorflow as tf

    v = variants.load(name)()
    v.build(digits_task.spec, Adam(), digits_task.init_weights)
    v.train_epoch(*digits_task.epoch_data(0), BATCH)
    assert tf.executing_eagerly()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    assert np.isfinite(history.history["loss"][0])
