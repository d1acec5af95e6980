"""The one task, made once by the harness and handed unchanged to every variant: the data
split, the model (the MLP, or wide & deep: variants.base SPECS), its inputs, the initial
weights and the order of batches in every epoch.

An epoch's order is derived from the seed when the epoch starts, never stored: a task costs
the same memory for 2 epochs as for 2 million."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets import Dataset
from variants.base import SPECS, ModelSpec


@dataclass(frozen=True)
class Task:
    x_train: np.ndarray  # (n_train, input_size) in [0, 1], in spec.dtype
    y_train: np.ndarray  # (n_train,) int64 in [0, num_classes)
    x_test: np.ndarray
    y_test: np.ndarray
    spec: ModelSpec
    init_weights: list[np.ndarray]  # spec.weight_shapes order, in spec.dtype
    epochs: int
    seed: int

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The permutation of the training samples used in `epoch` (0-based): its own stream
        of the seed, so that any epoch can be made without the ones before it."""
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"epoch {epoch} of a {self.epochs}-epoch task")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(ORDERS, epoch)))
        return rng.permutation(len(self.x_train))

    def epoch_data(self, epoch: int) -> tuple[Any, np.ndarray]:
        """Training data in the order of `epoch` (0-based), as a variant receives it: the
        spec's inputs (one array, or wide & deep's pair) and the labels."""
        order = self.epoch_order(epoch)
        return self.spec.inputs(self.x_train[order]), self.y_train[order]

    def test_inputs(self) -> Any:
        """The test samples as `predict` receives them."""
        return self.spec.inputs(self.x_test)

    def fingerprint(self) -> str:
        """A short hash of everything a variant receives, to prove two runs saw the same task."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        for w in self.init_weights:
            h.update(np.ascontiguousarray(w).tobytes())
        # The orders are a function of the seed: their rule and inputs stand for them.
        h.update(repr((self.spec, ORDER_RULE, self.seed, self.epochs)).encode())
        return h.hexdigest()[:16]

    def save(self, path: Path) -> None:
        weights = {f"w{i}": w for i, w in enumerate(self.init_weights)}
        np.savez(
            path,
            x_train=self.x_train,
            y_train=self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
            epochs=self.epochs,
            hidden=np.array(self.spec.hidden, dtype=np.int64),
            num_classes=self.spec.num_classes,
            seed=self.seed,
            dtype=self.spec.dtype,
            task=self.spec.task,
            spec_options=json.dumps(spec_options(self.spec)),
            **weights,
        )

    @classmethod
    def load(cls, path: Path) -> Task:
        with np.load(path) as f:
            spec = SPECS[str(f["task"]) if "task" in f else "mlp"](
                input_size=int(f["x_train"].shape[1]),
                hidden=tuple(int(h) for h in f["hidden"]),
                num_classes=int(f["num_classes"]),
                dtype=str(f["dtype"]) if "dtype" in f else "float32",
                **json.loads(str(f["spec_options"]) if "spec_options" in f else "{}"),
            )
            weights = [f[f"w{i}"] for i in range(len(spec.weight_shapes))]
            return cls(
                x_train=f["x_train"],
                y_train=f["y_train"],
                x_test=f["x_test"],
                y_test=f["y_test"],
                spec=spec,
                init_weights=weights,
                epochs=int(f["epochs"]),
                seed=int(f["seed"]),
            )


def input_rows(x: Any, rows: slice) -> Any:
    """Samples `rows` of a variant's input (`spec.inputs`): one array, or a tuple of arrays."""
    return tuple(a[rows] for a in x) if isinstance(x, tuple) else x[rows]


WEIGHTS, ORDERS = 0, 1  # the seed's independent streams (SeedSequence spawn keys)
ORDER_RULE = "permutation per epoch, SeedSequence(seed, spawn_key=(1, epoch))"


def glorot_uniform(spec: ModelSpec, rng: np.random.Generator) -> list[np.ndarray]:
    """Keras' default initialisation: kernels U(-l, l) with l = sqrt(6 / (fan_in + fan_out)),
    zero biases; in `spec.dtype` (the same draws in float32 and float64, rounded to each)."""
    weights = []
    for shape in spec.weight_shapes:
        if len(shape) == 2:
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            weights.append(rng.uniform(-limit, limit, size=shape).astype(spec.dtype))
        else:
            weights.append(np.zeros(shape, dtype=spec.dtype))
    return weights


def in_dtype(data: Dataset, dtype: str) -> Dataset:
    """The dataset with its pixels in `dtype` (the labels stay int64): done once per suite, so
    that the tasks of every seed share one copy; the same object when already in `dtype`."""
    if data.x_train.dtype == dtype and data.x_test.dtype == dtype:
        return data
    return replace(data, x_train=data.x_train.astype(dtype), x_test=data.x_test.astype(dtype))


def spec_options(spec: ModelSpec) -> dict[str, Any]:
    """What a task's spec adds to the MLP's fields (wide & deep: its wide input and loss
    weights), as JSON: the manifest and a saved task keep it."""
    base = {f.name for f in fields(ModelSpec)}
    return {f.name: getattr(spec, f.name) for f in fields(spec) if f.name not in base}


def model_spec(
    data: Dataset,
    hidden: tuple[int, ...],
    dtype: str = "float32",
    task: str = "mlp",
    **options: Any,
) -> ModelSpec:
    """The network a suite trains on `data`: its input and classes, `hidden` between them,
    as the model family `task` builds it (`options`: what that family adds, see SPECS)."""
    return SPECS[task](
        input_size=int(data.x_train.shape[1]),
        hidden=tuple(hidden),
        num_classes=data.num_classes,
        dtype=dtype,
        **options,
    )


def make_task(
    data: Dataset,
    hidden: tuple[int, ...],
    epochs: int,
    seed: int,
    dtype: str = "float32",
    task: str = "mlp",
    **options: Any,
) -> Task:
    """Weights and batch orders come from independent streams of one seed, so changing the
    number of epochs never changes the initial weights, nor the orders of the epochs kept.
    The pixels and the weights are handed over in `dtype` ("float32" or "float64"); `task`
    and `options` choose the model family (SPECS)."""
    weight_seq = np.random.SeedSequence(seed, spawn_key=(WEIGHTS,))
    spec = model_spec(data, hidden, dtype, task, **options)
    data = in_dtype(data, dtype)
    return Task(
        x_train=data.x_train,
        y_train=data.y_train,
        x_test=data.x_test,
        y_test=data.y_test,
        spec=spec,
        init_weights=glorot_uniform(spec, np.random.default_rng(weight_seq)),
        epochs=epochs,
        seed=seed,
    )
