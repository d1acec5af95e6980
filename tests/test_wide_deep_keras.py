"""Wide & deep in Keras: the functional model, the subclass and the fastest `fit` compute the
NumPy reference's run step by step (the total, main and auxiliary loss of every step), and
Sequential reports why it cannot express the model.

The two mistakes a multi-input, multi-output Keras model invites are shown caught: the inputs
in the wrong order (by Keras itself when the two inputs differ in width, by parity when the
concatenation is the one swapped) and the loss weights on the wrong outputs (by parity)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from harness.datasets import load_digits
from harness.results import scores
from harness.task import make_task
from variants.base import SGD, Adam, AsWritten, Momentum, NotExpressible
from variants.keras_optimizers import keras_optimizer
from variants.wide_deep.keras_common import BatchLoss, hidden_names
from variants.wide_deep.keras_fit_fast import KerasFitJIT
from variants.wide_deep.keras_functional import KerasFunctional
from variants.wide_deep.keras_sequential import KerasSequential
from variants.wide_deep.keras_subclass import KerasSubclass
from variants.wide_deep.numpy_scratch import NumpyScratch

BATCH = 64
EPOCHS = 3
STEPS = 22  # of an epoch: 1347 digits in batches of 64, the last one short (3)
LOSS_TOL = scores.parity_tolerance("float32")
OPTIMIZERS = {"sgd": SGD(lr=0.1), "momentum": Momentum(lr=0.05, momentum=0.9), "adam": Adam()}
# 425 steps in 5 epochs of batch 16 (84 full and a short one of 3): `fit` costs about 0.1 s a
# call whatever the epoch holds, so as many steps as 20 epochs of 22 for a quarter of the calls
FLOAT64_EPOCHS, FLOAT64_BATCH, FLOAT64_STEPS = 5, 16, 85
FLOAT64_OPTIMIZERS = {"sgd": SGD(), "momentum": Momentum(), "adam": Adam()}  # exact in float32
VARIANTS = [KerasFunctional, KerasSubclass, KerasFitJIT]


@pytest.fixture(autouse=True)
def keras_float32_restored():
    """The variants set Keras' float process-wide from spec.dtype: put float32 back."""
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


def make(epochs, dtype="float32"):
    return make_task(
        load_digits(), hidden=(32, 16), epochs=epochs, seed=0, dtype=dtype, task="wide-deep"
    )


def train(variant, task, optimizer, epochs=None, batch=BATCH):
    """The losses (steps, 3), the final weights and the test logits of one run."""
    variant.build(task.spec, optimizer, task.init_weights)
    epochs = range(task.epochs if epochs is None else epochs)
    losses = np.concatenate(
        [np.asarray(variant.train_epoch(*task.epoch_data(e), batch)) for e in epochs]
    )
    weights = [np.asarray(w) for w in variant.get_weights()]
    return losses, weights, np.asarray(variant.predict(task.test_inputs()))


@pytest.fixture(scope="module")
def task():
    return make(EPOCHS)


@pytest.fixture(scope="module")
def references(task):
    return {k: train(NumpyScratch(), task, opt) for k, opt in OPTIMIZERS.items()}


def test_weights_land_where_the_contract_says(task):
    for variant in [cls() for cls in VARIANTS]:
        variant.build(task.spec, Adam(), task.init_weights)
        for w, r in zip(variant.get_weights(), task.init_weights, strict=True):
            np.testing.assert_array_equal(w, r)
        kernel = variant.model.get_layer("main").kernel
        np.testing.assert_array_equal(kernel, task.init_weights[-4])
    # Why they are set layer by layer: Keras orders a functional model's weights with its dict
    # outputs sorted by name, the auxiliary head before the main one.
    functional = KerasFunctional()
    functional.build(task.spec, Adam(), task.init_weights)
    keras_order = [w.path for w in functional.model.weights]
    assert keras_order.index("aux/kernel") < keras_order.index("main/kernel")


def float32_cases():
    """Every variant with every optimizer; XLA compiles the epoch of `keras_fit_jit` for seconds,
    so with Adam only in the fast tier."""
    for cls in VARIANTS:
        for k in OPTIMIZERS:
            slow = cls is KerasFitJIT and k != "adam"
            yield pytest.param(cls, k, id=f"{cls.name}-{k}", marks=[pytest.mark.system] * slow)


@pytest.mark.parametrize(("cls", "optimizer_name"), list(float32_cases()))
def test_float32_parity_of_every_loss_at_every_step(cls, optimizer_name, task, references):
    ref_losses, ref_weights, ref_logits = references[optimizer_name]
    losses, weights, logits = train(cls(), task, OPTIMIZERS[optimizer_name])

    assert losses.shape == ref_losses.shape == (EPOCHS * STEPS, 3)
    gap = np.abs(losses - ref_losses)
    for column, name in enumerate(["total", "main", "aux"]):
        step = gap[:, column].argmax()
        assert gap[step, column] < LOSS_TOL, f"{name}, step {step}: {gap[step, column]:.2e}"
    for w, r in zip(weights, ref_weights, strict=True):
        assert w.shape == r.shape
        np.testing.assert_allclose(w, r, atol=1e-4)
    assert logits.shape == ref_logits.shape == (len(task.y_test), task.spec.num_classes)
    assert logits.dtype == np.float32


# Adam in the fast tier (the optimizer with the most constants to get wrong)
FLOAT64_TIERS = [
    pytest.param(k, marks=[] if k == "adam" else [pytest.mark.system]) for k in FLOAT64_OPTIMIZERS
]
# in the fast tier, the functional model's float64 run stands for the three (the subclass runs
# its layers, keras_fit_jit its graph compiled by XLA for 10 s); all three in the system tier
FLOAT64_VARIANTS = [
    pytest.param(cls, id=cls.name, marks=[] if cls is KerasFunctional else [pytest.mark.system])
    for cls in VARIANTS
]


@pytest.fixture(scope="module")
def float64_task():
    return make(FLOAT64_EPOCHS, "float64")


@pytest.mark.parametrize("optimizer_name", FLOAT64_TIERS)
@pytest.mark.parametrize("cls", FLOAT64_VARIANTS)
def test_float64_parity_over_a_whole_run(cls, optimizer_name, float64_task):
    optimizer = FLOAT64_OPTIMIZERS[optimizer_name]
    ref_losses, ref_weights, _ = train(NumpyScratch(), float64_task, optimizer, batch=FLOAT64_BATCH)
    losses, weights, logits = train(cls(), float64_task, optimizer, batch=FLOAT64_BATCH)

    tolerance = scores.parity_tolerance("float64")
    assert losses.shape == (FLOAT64_EPOCHS * FLOAT64_STEPS, 3)
    gap = np.abs(losses - ref_losses)
    assert gap.max() <= tolerance, f"step {gap.max(axis=1).argmax()}: {gap.max():.2e}"
    assert logits.dtype == np.float64
    for w, r in zip(weights, ref_weights, strict=True):
        assert w.dtype == np.float64
        np.testing.assert_allclose(w, r, rtol=0, atol=tolerance)


@pytest.mark.parametrize("cls", VARIANTS, ids=lambda c: c.name)
def test_as_written_starts_from_keras_own_seeded_weights(cls, task):
    def initial(seed):
        variant = cls()
        variant.build(task.spec, Adam(), None, as_written=AsWritten(seed=seed))
        return variant, variant.get_weights()

    variant, weights = initial(3)
    assert [w.shape for w in weights] == task.spec.weight_shapes
    for w, again in zip(weights, initial(3)[1], strict=True):
        np.testing.assert_array_equal(w, again)
    assert not np.array_equal(weights[0], initial(4)[1][0])
    if cls is KerasFunctional:  # fit(shuffle=True) keeps the pair and the labels together
        losses = variant.train_epoch(task.spec.inputs(task.x_train), task.y_train, BATCH)
        assert losses.shape == (STEPS, 3) and np.isfinite(losses).all()


class KerasLogsItsLoss(KerasFunctional):
    """Keeps Keras' own `logs["loss"]`: the running mean of the total it minimises."""

    def fit(self, x, y, batch_size, callbacks=()):
        self.running = []
        keep = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: self.running.append(logs["loss"])
        )
        super().fit(x, y, batch_size, [*callbacks, keep])


def test_the_total_is_the_loss_keras_minimises(task):
    variant = KerasLogsItsLoss()
    variant.build(task.spec, Adam(), task.init_weights)
    losses = variant.train_epoch(*task.epoch_data(0), BATCH)
    # Keras' mean weighs each step by its batch's size
    sizes = np.diff(np.r_[0 : len(task.y_train) : BATCH, len(task.y_train)])
    ours = np.cumsum(losses[:, 0] * sizes) / np.cumsum(sizes)
    np.testing.assert_allclose(variant.running, ours, rtol=1e-6)


def test_sequential_cannot_express_it(task):
    with pytest.raises(NotExpressible) as raised:
        KerasSequential().build(task.spec, Adam(), task.init_weights)
    message = str(raised.value)
    assert "\n" not in message
    assert "no second input" in message and "no second output" in message
    assert "You cannot add a different Input layer" in message  # Keras' own reason


class DeepFirstFunctional(KerasFunctional):
    """Feeds `fit` the pair as [deep, wide]."""

    def fit(self, x, y, batch_size, callbacks=()):
        wide, deep = x
        super().fit([deep, wide], y, batch_size, callbacks)


class DeepFirstSubclass(KerasSubclass):
    def fit(self, x, y, batch_size, callbacks=()):
        wide, deep = x
        super().fit([deep, wide], y, batch_size, callbacks)


@pytest.mark.parametrize(
    ("cls", "keras_says"),
    [
        # the named input checks the width of what it is given
        (DeepFirstFunctional, r"Input 0 with name 'wide' .* expected shape=\(None, 16\), found "),
        # the subclass has no input of its own: its first deep layer checks the width
        (DeepFirstSubclass, r"layer 'hidden_1' .* expected axis -1 .* value 64, but received"),
    ],
    ids=["functional", "subclass"],
)
def test_inputs_fed_in_the_wrong_order_are_refused_by_keras(cls, keras_says, task):
    # Only because the two inputs differ in width (16 and 64 features): inputs of one width
    # in the wrong order would train silently, and parity would have to catch them.
    variant = cls()
    variant.build(task.spec, Adam(), task.init_weights)
    with pytest.raises(ValueError, match=keras_says):
        variant.train_epoch(*task.epoch_data(0), BATCH)


class DeepFirstConcatenation(KerasFunctional):
    """Concatenates [h, wide], not the contract's [wide, h]: the main head's kernel has the same
    shape either way, so the contract's weights load without a word."""

    def make_model(self, spec):
        wide = keras.Input(shape=(spec.wide_size,), name="wide")
        deep = keras.Input(shape=(spec.input_size,), name="deep")
        h = deep
        for size, name in zip(spec.hidden, hidden_names(spec), strict=True):
            h = keras.layers.Dense(size, activation="relu", name=name)(h)
        main = keras.layers.Dense(spec.num_classes, name="main")(
            keras.layers.Concatenate()([h, wide])
        )
        aux = keras.layers.Dense(spec.num_classes, name="aux")(h)
        return keras.Model(inputs=[wide, deep], outputs={"main": main, "aux": aux})


def test_a_swapped_concatenation_is_caught_by_parity(task, references):
    ref_losses = references["adam"][0][:STEPS]
    losses, _, _ = train(DeepFirstConcatenation(), task, Adam(), epochs=1)
    gap = np.abs(losses - ref_losses)
    assert gap[0, 1] > 100 * LOSS_TOL  # the main output differs from the first step
    assert gap[0, 2] < LOSS_TOL  # the auxiliary one only once training has mixed them
    assert gap.max() > 100 * LOSS_TOL


class LossWeightsAsAList(KerasFunctional):
    """Compiles with `loss_weights=[0.9, 0.1]`, the spec's tuple as a list: Keras matches a list
    to its outputs in its own order, which sorts a dict's names (aux, main)."""

    def build(self, spec, optimizer, init_weights, **kwargs):
        super().build(spec, optimizer, init_weights, **kwargs)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.model.compile(
            optimizer=keras_optimizer(optimizer),
            loss={"main": loss, "aux": loss},
            loss_weights=list(spec.loss_weights),
            metrics={"main": [BatchLoss()], "aux": [BatchLoss()]},
        )


def test_loss_weights_on_the_wrong_outputs_are_caught_by_parity(task, references):
    ref_losses = references["adam"][0][:STEPS]
    losses, _, _ = train(LossWeightsAsAList(), task, Adam(), epochs=1)
    gap = np.abs(losses - ref_losses)
    assert gap[0].max() < LOSS_TOL  # the same first forward pass...
    assert gap[1:, 1:].max() > 100 * LOSS_TOL  # ...then each head learns at the other's rate
