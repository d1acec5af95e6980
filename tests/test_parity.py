"""With the same weights and batch order, every API level computes the same training run as
the NumPy reference, step by step: in float32 over a few epochs, and in float64 over a few
hundred steps, to the tighter tolerance that holds over whole runs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import variants
from harness.datasets import load_digits
from harness.results import scores
from harness.run import cluster
from harness.task import make_task
from variants.base import SGD, Adam, Momentum

from .conftest import BATCH

LOSS_TOL = 1e-5
OPTIMIZERS = {"sgd": SGD(lr=0.1), "momentum": Momentum(lr=0.05, momentum=0.9), "adam": Adam()}
# 215 steps of digits in few epochs: Keras `fit` costs about 0.1 s a call whatever the epoch
# holds, so 5 epochs of batch 32 (42 full batches and a short one of 3) check as many steps as
# 20 epochs of 11 for a quarter of the calls
FLOAT64_EPOCHS, FLOAT64_BATCH, FLOAT64_STEPS = 5, 32, 43
# the spec's own defaults: constants exact in float32, which Keras rounds its constants through
FLOAT64_OPTIMIZERS = {"sgd": SGD(), "momentum": Momentum(), "adam": Adam()}


def train(name, task, optimizer, batch=BATCH):
    v = variants.load(name)()
    v.build(task.spec, optimizer, task.init_weights)
    epochs = range(task.epochs)
    losses = np.concatenate([v.train_epoch(*task.epoch_data(e), batch) for e in epochs])
    return losses, [np.asarray(w) for w in v.get_weights()], np.asarray(v.predict(task.x_test))


@pytest.fixture(scope="module")
def references(digits_task):
    """The NumPy reference run for each optimizer, computed once."""
    return {k: train(variants.REFERENCE, digits_task, opt) for k, opt in OPTIMIZERS.items()}


# distributed variants start TensorFlow their own way: in fresh processes (test_distributed.py)
IN_PROCESS = [n for n in variants.REGISTRY if cluster.layout(variants.REGISTRY[n]) == "single"]


@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
@pytest.mark.parametrize("name", [n for n in IN_PROCESS if n != variants.REFERENCE])
def test_parity_with_numpy(name, optimizer_name, digits_task, references):
    ref_losses, ref_weights, ref_logits = references[optimizer_name]
    losses, weights, logits = train(name, digits_task, OPTIMIZERS[optimizer_name])

    assert losses.shape == ref_losses.shape
    gap = np.abs(losses - ref_losses)
    assert gap.max() < LOSS_TOL, f"step {gap.argmax()}: |dloss| = {gap.max():.2e}"
    assert sum(w.size for w in weights) == sum(w.size for w in ref_weights)
    for w, r in zip(weights, ref_weights, strict=True):
        np.testing.assert_allclose(w, r, atol=1e-4)
    y = digits_task.y_test
    correct = (logits.argmax(1) == y).sum()
    ref_correct = (ref_logits.argmax(1) == y).sum()
    assert abs(int(correct) - int(ref_correct)) <= 1


@pytest.fixture(scope="module")
def float64_task():
    return make_task(load_digits(), hidden=(32, 16), epochs=FLOAT64_EPOCHS, seed=0, dtype="float64")


@pytest.fixture(scope="module")
def float64_references(float64_task):
    return {
        k: train(variants.REFERENCE, float64_task, opt, FLOAT64_BATCH)
        for k, opt in FLOAT64_OPTIMIZERS.items()
    }


@pytest.fixture
def keras_float32_restored():
    """The Keras variants set process-wide defaults from spec.dtype: put float32 back."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].config.set_floatx("float32")
        sys.modules["keras"].config.set_dtype_policy("float32")
    if "tf_keras" in sys.modules:
        sys.modules["tf_keras"].backend.set_floatx("float32")


# Adam in the fast tier (the optimizer with the most constants to get wrong); SGD and momentum,
# which the float32 test above checks for every variant, in the system tier.
FLOAT64_TIERS = [
    pytest.param(k, marks=[] if k == "adam" else [pytest.mark.system]) for k in FLOAT64_OPTIMIZERS
]


@pytest.mark.usefixtures("keras_float32_restored")
@pytest.mark.parametrize("optimizer_name", FLOAT64_TIERS)
@pytest.mark.parametrize("name", [n for n in IN_PROCESS if n != variants.REFERENCE])
def test_float64_parity_holds_at_every_step(name, optimizer_name, float64_task, float64_references):
    ref_losses, ref_weights, _ = float64_references[optimizer_name]
    optimizer = FLOAT64_OPTIMIZERS[optimizer_name]
    losses, weights, logits = train(name, float64_task, optimizer, FLOAT64_BATCH)

    tolerance = scores.parity_tolerance("float64")
    assert losses.shape == ref_losses.shape == (FLOAT64_EPOCHS * FLOAT64_STEPS,)
    gap = np.abs(losses - ref_losses)
    assert gap.max() <= tolerance, f"step {gap.argmax()}: |dloss| = {gap.max():.2e}"
    assert logits.dtype == np.float64
    for w, r in zip(weights, ref_weights, strict=True):
        assert w.dtype == np.float64
        np.testing.assert_allclose(w, r, rtol=0, atol=tolerance)
