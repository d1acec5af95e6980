"""The one task, made once by the harness and handed unchanged to every variant: the data
split, the initial weights and the order of batches in every epoch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.datasets import Dataset
from variants.base import ModelSpec


@dataclass(frozen=True)
class Task:
    x_train: np.ndarray  # (n_train, input_size) float32 in [0, 1]
    y_train: np.ndarray  # (n_train,) int64 in [0, num_classes)
    x_test: np.ndarray
    y_test: np.ndarray
    spec: ModelSpec
    init_weights: list[np.ndarray]  # spec.weight_shapes order, float32
    epoch_orders: np.ndarray  # (epochs, n_train) int64: the permutation used in each epoch
    seed: int

    def epoch_data(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Training data in the order of `epoch` (0-based)."""
        order = self.epoch_orders[epoch]
        return self.x_train[order], self.y_train[order]

    def fingerprint(self) -> str:
        """A short hash of everything a variant receives, to prove two runs saw the same task."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test, self.epoch_orders):
            h.update(np.ascontiguousarray(a).tobytes())
        for w in self.init_weights:
            h.update(np.ascontiguousarray(w).tobytes())
        h.update(repr(self.spec).encode())
        return h.hexdigest()[:16]

    def save(self, path: Path) -> None:
        weights = {f"w{i}": w for i, w in enumerate(self.init_weights)}
        np.savez(
            path,
            x_train=self.x_train,
            y_train=self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
            epoch_orders=self.epoch_orders,
            hidden=np.array(self.spec.hidden, dtype=np.int64),
            num_classes=self.spec.num_classes,
            seed=self.seed,
            **weights,
        )

    @classmethod
    def load(cls, path: Path) -> Task:
        with np.load(path) as f:
            spec = ModelSpec(
                input_size=int(f["x_train"].shape[1]),
                hidden=tuple(int(h) for h in f["hidden"]),
                num_classes=int(f["num_classes"]),
            )
            weights = [f[f"w{i}"] for i in range(len(spec.weight_shapes))]
            return cls(
                x_train=f["x_train"],
                y_train=f["y_train"],
                x_test=f["x_test"],
                y_test=f["y_test"],
                spec=spec,
                init_weights=weights,
                epoch_orders=f["epoch_orders"],
                seed=int(f["seed"]),
            )


def glorot_uniform(spec: ModelSpec, rng: np.random.Generator) -> list[np.ndarray]:
    """Keras' default initialisation: kernels U(-l, l) with l = sqrt(6 / (fan_in + fan_out)),
    zero biases."""
    weights = []
    for shape in spec.weight_shapes:
        if len(shape) == 2:
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            weights.append(rng.uniform(-limit, limit, size=shape).astype(np.float32))
        else:
            weights.append(np.zeros(shape, dtype=np.float32))
    return weights


def make_task(data: Dataset, hidden: tuple[int, ...], epochs: int, seed: int) -> Task:
    """Weights and batch orders come from independent streams of one seed, so changing the
    number of epochs never changes the initial weights."""
    weight_seq, order_seq = np.random.SeedSequence(seed).spawn(2)
    spec = ModelSpec(input_size=data.x_train.shape[1], hidden=tuple(hidden), num_classes=10)
    order_rng = np.random.default_rng(order_seq)
    n = len(data.x_train)
    orders = np.stack([order_rng.permutation(n) for _ in range(epochs)]).astype(np.int64)
    return Task(
        x_train=data.x_train,
        y_train=data.y_train,
        x_test=data.x_test,
        y_test=data.y_test,
        spec=spec,
        init_weights=glorot_uniform(spec, np.random.default_rng(weight_seq)),
        epoch_orders=orders.reshape(epochs, n),
        seed=seed,
    )
