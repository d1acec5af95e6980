"""Wide & deep in tf.compat.v1 and TF2 core computes the same training run as the NumPy
reference, step by step and for each of its three losses (total, main, auxiliary): in float32
over a few epochs, and in float64 over a few hundred steps, to the tolerance that holds over
whole runs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from harness.datasets import load_digits
from harness.results import scores
from harness.task import make_task
from variants.base import SGD, Adam, AsWritten, Momentum
from variants.wide_deep.numpy_scratch import NumpyScratch
from variants.wide_deep.tf1_graph import TF1Graph
from variants.wide_deep.tf2_epoch import TF2EpochFunctionXLA
from variants.wide_deep.tf2_tape import TF2Function

VARIANTS = {v.name: v for v in (TF1Graph, TF2Function, TF2EpochFunctionXLA)}
BATCH = 64  # digits has 1347 training images: 21 full batches and a short one of 3
STEPS = 22  # per epoch
EPOCHS, FLOAT64_EPOCHS = 3, 20
OPTIMIZERS = {"sgd": SGD(lr=0.1), "momentum": Momentum(lr=0.05, momentum=0.9), "adam": Adam()}
# the spec's own defaults: constants exact in float32, which Keras rounds its constants through
FLOAT64_OPTIMIZERS = {"sgd": SGD(), "momentum": Momentum(), "adam": Adam()}


def make(dtype: str, epochs: int):
    return make_task(
        load_digits(), hidden=(32, 16), epochs=epochs, seed=0, dtype=dtype, task="wide-deep"
    )


def train(cls, task, optimizer):
    v = cls()
    v.build(task.spec, optimizer, task.init_weights)
    losses = [np.asarray(v.train_epoch(*task.epoch_data(e), BATCH)) for e in range(task.epochs)]
    weights = [np.asarray(w) for w in v.get_weights()]
    return np.concatenate(losses), weights, np.asarray(v.predict(task.test_inputs()))


@pytest.fixture(scope="module")
def float32_task():
    return make("float32", EPOCHS)


@pytest.fixture(scope="module")
def float64_task():
    return make("float64", FLOAT64_EPOCHS)


@pytest.fixture(scope="module")
def references(float32_task):
    """The NumPy reference run for each optimizer, computed once."""
    return {k: train(NumpyScratch, float32_task, opt) for k, opt in OPTIMIZERS.items()}


@pytest.fixture(scope="module")
def float64_references(float64_task):
    return {k: train(NumpyScratch, float64_task, opt) for k, opt in FLOAT64_OPTIMIZERS.items()}


@pytest.fixture
def keras_float32_restored():
    """The TF2 variants set Keras' process-wide float from spec.dtype: put float32 back."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].config.set_floatx("float32")


def assert_same_run(run, reference, tolerance, weight_tolerance, n_test, dtype):
    losses, weights, logits = run
    ref_losses, ref_weights, _ = reference
    assert losses.shape == ref_losses.shape  # (steps, 3): total, main, aux
    assert losses.dtype == dtype
    gap = np.abs(losses - ref_losses)
    step, column = np.unravel_index(gap.argmax(), gap.shape)
    assert gap.max() < tolerance, f"step {step}, column {column}: |dloss| = {gap.max():.2e}"
    assert [w.shape for w in weights] == [w.shape for w in ref_weights]
    for w, r in zip(weights, ref_weights, strict=True):
        assert w.dtype == dtype
        np.testing.assert_allclose(w, r, rtol=0, atol=weight_tolerance)
    assert logits.shape == (n_test, 10) and logits.dtype == dtype


def test_the_reference_returns_total_main_and_aux_of_every_step(references):
    losses = references["adam"][0]
    assert losses.shape == (EPOCHS * STEPS, 3)
    total, main, aux = losses.T
    np.testing.assert_allclose(total, 0.9 * main + 0.1 * aux, rtol=1e-6)
    assert not np.allclose(main, aux)  # two heads, two losses: a swapped column would show


@pytest.mark.usefixtures("keras_float32_restored")
@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
@pytest.mark.parametrize("name", list(VARIANTS))
def test_parity_with_numpy_in_float32(name, optimizer_name, float32_task, references):
    run = train(VARIANTS[name], float32_task, OPTIMIZERS[optimizer_name])
    assert run[0].shape == (EPOCHS * STEPS, 3)
    n_test = len(float32_task.y_test)
    assert_same_run(run, references[optimizer_name], 1e-5, 1e-4, n_test, np.float32)


# Adam in the fast tier (the optimizer with the most constants to get wrong); SGD and momentum,
# which the float32 test checks for every variant, in the system tier.
FLOAT64_TIERS = [
    pytest.param(k, marks=[] if k == "adam" else [pytest.mark.system]) for k in FLOAT64_OPTIMIZERS
]


@pytest.mark.usefixtures("keras_float32_restored")
@pytest.mark.parametrize("optimizer_name", FLOAT64_TIERS)
@pytest.mark.parametrize("name", list(VARIANTS))
def test_float64_parity_holds_at_every_step(name, optimizer_name, float64_task, float64_references):
    run = train(VARIANTS[name], float64_task, FLOAT64_OPTIMIZERS[optimizer_name])
    assert run[0].shape == (FLOAT64_EPOCHS * STEPS, 3)
    tolerance = scores.parity_tolerance("float64")
    n_test = len(float64_task.y_test)
    assert_same_run(
        run, float64_references[optimizer_name], tolerance, tolerance, n_test, np.float64
    )


# XLA compiles each of the three builds for seconds: its as-written run in the system tier
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.system] if "xla" in n else []) for n in VARIANTS
])  # fmt: skip
def test_as_written_initialises_and_shuffles_from_its_seed(name, float32_task):
    """As written, the variant draws its own weights and shuffles its own way, both from the
    seed: the same seed trains the same run, another seed another."""

    def run(seed):
        v = VARIANTS[name]()
        v.build(float32_task.spec, Adam(), None, as_written=AsWritten(seed=seed))
        x, y = float32_task.spec.inputs(float32_task.x_train), float32_task.y_train
        return np.asarray(v.train_epoch(x, y, BATCH)), [np.asarray(w) for w in v.get_weights()]

    (losses, weights), (again, _), (other, _) = run(1), run(1), run(2)
    assert losses.shape == (STEPS, 3) and np.isfinite(losses).all()
    np.testing.assert_array_equal(losses, again)
    assert not np.allclose(losses, other)
    assert losses[-5:, 0].mean() < losses[:5, 0].mean()  # it learns
    assert [w.shape for w in weights] == [w.shape for w in float32_task.init_weights]
