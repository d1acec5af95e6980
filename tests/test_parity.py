"""With the same weights and batch order, every API level computes the same training run as
the NumPy reference, step by step (float32)."""

from __future__ import annotations

import numpy as np
import pytest

import variants
from harness.run import cluster
from variants.base import SGD, Adam, Momentum

from .conftest import BATCH, EPOCHS

LOSS_TOL = 1e-5
OPTIMIZERS = {"sgd": SGD(lr=0.1), "momentum": Momentum(lr=0.05, momentum=0.9), "adam": Adam()}


def train(name, task, optimizer):
    v = variants.load(name)()
    v.build(task.spec, optimizer, task.init_weights)
    losses = np.concatenate([v.train_epoch(*task.epoch_data(e), BATCH) for e in range(EPOCHS)])
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
