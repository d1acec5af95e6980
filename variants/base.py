"""The contract between the harness and a variant: the model spec, the optimizers, the protocol.

Only NumPy arrays cross this boundary. The harness owns the data, the split, the initial
weights and the order of batches; a variant receives them and only trains.

`--mode as-written` hands three of those back (see `AsWritten`): the variant then initialises,
orders its batches and sets its optimizer's constants its level's own way, as people write it.
The harness still owns the data and the split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

DTYPES = ("float32", "float64")  # float32 by default; float64 to prove parity over whole runs


@dataclass(frozen=True)
class ModelSpec:
    """Task "mlp": a dense ReLU network ending in `num_classes` logits; loss = mean softmax
    cross-entropy. A variant's input is one array (n, input_size)."""

    input_size: int
    hidden: tuple[int, ...] = (512, 256)
    num_classes: int = 10
    # One of DTYPES: the dtype of the data, the weights, the activations and optimizer state.
    dtype: str = "float32"

    task: ClassVar[str] = "mlp"
    # Outputs with a loss of their own, whose per-step losses `train_epoch` returns beside the
    # total; none for a single-output model.
    outputs: ClassVar[tuple[str, ...]] = ()

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.input_size, *self.hidden, self.num_classes)

    @property
    def dense_layers(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of every dense layer, in weight order."""
        return list(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))

    @property
    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Shapes in the order every variant uses: [W1 (in, out), b1 (out,), W2, b2, ...]."""
        shapes: list[tuple[int, ...]] = []
        for fan_in, fan_out in self.dense_layers:
            shapes += [(fan_in, fan_out), (fan_out,)]
        return shapes

    @property
    def param_count(self) -> int:
        return sum(int(np.prod(s)) for s in self.weight_shapes)

    def inputs(self, x: np.ndarray) -> Any:
        """What a variant receives for the samples `x` (n, input_size): here `x` itself."""
        return x


@dataclass(frozen=True)
class WideDeepSpec(ModelSpec):
    """Task "wide-deep": the wide & deep network, two inputs and two outputs.

    - inputs, made by the harness (`inputs`) and handed to a variant as the pair
      (x_wide, x_deep): the deep input is every feature, the wide input every
      `wide_stride`-th feature in the dataset's order (for a 28 x 28 image with the default 4:
      columns 0, 4, ..., 24 of every row, 196 of 784; for 8 x 8 digits 16 of 64);
    - the deep path: dense ReLU layers of sizes `hidden` on the deep input;
    - the main output: dense logits on the concatenation [x_wide, last hidden layer], the wide
      input first;
    - the auxiliary output: dense logits on the last hidden layer;
    - loss = loss_weights[0] * CE(main) + loss_weights[1] * CE(aux), each CE the batch's mean
      softmax cross-entropy; accuracy and `predict` are the main output's.

    Weights, in this order: W1, b1, ..., Wk, bk (the deep path), W_main (wide_size +
    hidden[-1], num_classes), b_main, W_aux (hidden[-1], num_classes), b_aux.
    `train_epoch` returns an array (steps, 3): the total, main and auxiliary loss of each step.
    """

    wide_stride: int = 4
    loss_weights: tuple[float, float] = (0.9, 0.1)  # (main, aux)

    task: ClassVar[str] = "wide-deep"
    outputs: ClassVar[tuple[str, ...]] = ("main", "aux")

    def __post_init__(self) -> None:
        if not self.hidden:
            raise ValueError("wide & deep needs at least one hidden layer for its deep path")
        # a tuple of floats, however given (JSON gives a list): specs compare equal
        object.__setattr__(self, "loss_weights", tuple(float(w) for w in self.loss_weights))

    @property
    def wide_size(self) -> int:
        return len(range(0, self.input_size, self.wide_stride))

    @property
    def dense_layers(self) -> list[tuple[int, int]]:
        deep = list(zip((self.input_size, *self.hidden[:-1]), self.hidden, strict=True))
        last, classes = self.hidden[-1], self.num_classes
        return [*deep, (self.wide_size + last, classes), (last, classes)]

    def inputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x_wide, x_deep) for the samples `x` (n, input_size)."""
        return np.ascontiguousarray(x[:, :: self.wide_stride]), x


# The model families, by the name `--task` and results give them (a spec's `task`).
SPECS: dict[str, type[ModelSpec]] = {spec.task: spec for spec in (ModelSpec, WideDeepSpec)}


@dataclass(frozen=True)
class SGD:
    """w -= lr * g"""

    lr: float = 0.1


@dataclass(frozen=True)
class Momentum:
    """Heavy-ball momentum as Keras writes it: v = momentum * v - lr * g; w += v.

    momentum defaults to float32(0.9) because Keras casts it to the variables' dtype through a
    float32 tensor (`tf.cast` of a Python float); a value exact in float32 makes every level
    agree in float64 too.
    """

    lr: float = 0.05
    momentum: float = float(np.float32(0.9))


@dataclass(frozen=True)
class Adam:
    """Adam as Keras and tf.compat.v1 compute it: the bias correction is folded into the step
    size and epsilon sits outside the square root, w -= lr_t * m / (sqrt(v) + epsilon).

    beta_2 defaults to float32(0.999) because Keras rounds it through float32 in its bias
    correction and TF1 does not; a value exact in float32 makes both agree. epsilon is Keras'
    1e-7 (TF1's default is 1e-8), so every variant must pass it explicitly.
    """

    lr: float = 1e-3
    beta_1: float = float(np.float32(0.9))
    beta_2: float = float(np.float32(0.999))
    epsilon: float = 1e-7


Optimizer = SGD | Momentum | Adam


@dataclass(frozen=True)
class AsWritten:
    """What the harness leaves to the variant. `build` takes it as `as_written`: CONTROLLED
    (everything the harness', the default) or, in `--mode as-written`, AsWritten(seed).

    Each True field is the variant's to do its level's own way; `--ablate` hands one back to
    the harness, so that a difference between levels can be traced to its cause:

    - the initializer: `init_weights` is None; initialise with the level's own initializer,
      seeded from `seed` by the framework's own seeding (`np.random.default_rng`,
      `tf.compat.v1.set_random_seed`, `tf.random.set_seed`, `keras.utils.set_random_seed`).
      With `--ablate initializer` the harness' `init_weights` are given as usual.
    - `shuffle`: `train_epoch` receives the data in the dataset's order every epoch; shuffle
      it the level's way (a NumPy permutation, a TF shuffle, `fit(shuffle=True)`). False:
      the harness orders the batches.
    - `optimizer_defaults`: give the optimizer only what a user writes (the learning rate, and
      momentum): the level's own constants (Adam's epsilon: 1e-8 in tf.compat.v1, 1e-7 in
      Keras). False: every constant of `optimizer`.
    - `own_dtype`: the level's default float (NumPy's float64; TensorFlow's and Keras' float32,
      which is then `spec.dtype`). False: `spec.dtype`.

    A variant follows as-written mode by taking `as_written` in `build`; one that does not is
    left out of as-written runs.
    """

    seed: int | None  # None under full control: nothing is drawn
    shuffle: bool = True
    optimizer_defaults: bool = True
    own_dtype: bool = True


CONTROLLED = AsWritten(seed=None, shuffle=False, optimizer_defaults=False, own_dtype=False)


class NotExpressible(Exception):
    """Raised by `build` when the variant's API cannot express the task's model; the message
    says why. The harness records it as a result ("inexpressible"), not as a failure."""


@runtime_checkable
class Variant(Protocol):
    """One implementation of the task at one API level.

    A Protocol rather than a base class, so a Keras variant may still inherit `keras.Model`.

    Optional class attributes place a variant on its level's cost ladder in reports: `level`
    (the family: "NumPy", "tf.compat.v1", "TF2 core", "Keras", ...) and `rung` (0 = the form
    tutorials teach, higher = faster forms of the same level; unique within a level); `task`
    names the task it implements (`ModelSpec.task`: "mlp" when absent, or "wide-deep").
    """

    name: ClassVar[str]
    api_level: ClassVar[str]

    def build(
        self,
        spec: ModelSpec,
        optimizer: Optimizer,
        init_weights: list[np.ndarray] | None,
        *,
        as_written: AsWritten = CONTROLLED,
    ) -> None:
        """Create the model and the optimizer in `spec.dtype`, then load `init_weights` (in
        `spec.dtype` and `spec.weight_shapes` order). `as_written` is optional to accept: only
        `--mode as-written` passes it, and `init_weights` is then None unless the initializer
        is ablated (see AsWritten)."""
        ...

    def train_epoch(self, x: Any, y: np.ndarray, batch_size: int) -> np.ndarray:
        """Train on x in `spec.dtype` (`spec.inputs` of the samples: an array (n, input_size)
        for the MLP, the pair (x_wide, x_deep) for wide & deep) and y (n,) int64 in the order
        given, in consecutive batches of `batch_size` (the last may be short); never shuffle,
        unless `as_written.shuffle` said to.
        Return the exact loss of every step, shape (ceil(n / batch_size),), or, for a spec
        with `outputs`, (ceil(n / batch_size), 1 + len(outputs)): the total loss, then each
        output's. A NumPy array or any array-like (a framework tensor may stay on its device;
        the harness converts it inside the timed window, so queued work is timed)."""
        ...

    def predict(self, x: Any) -> np.ndarray:
        """Logits (n, num_classes) in `spec.dtype` (the main output's, for several outputs)."""
        ...

    def get_weights(self) -> list[np.ndarray]:
        """Current weights, in `spec.weight_shapes` order, as NumPy arrays in `spec.dtype`."""
        ...


# The optimizers by the name a command line and a manifest give them.
OPTIMIZERS: dict[str, type[SGD] | type[Momentum] | type[Adam]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "adam": Adam,
}


def optimizer_to_dict(opt: Optimizer) -> dict[str, Any]:
    kind = next(k for k, cls in OPTIMIZERS.items() if isinstance(opt, cls))
    return {"kind": kind, **asdict(opt)}


def optimizer_from_dict(data: dict[str, Any]) -> Optimizer:
    fields_ = dict(data)
    return OPTIMIZERS[fields_.pop("kind")](**fields_)
