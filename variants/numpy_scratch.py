"""The MLP from scratch in NumPy: forward, backward and the optimizers written as math.

Every other variant is checked against this one, step by step."""

from __future__ import annotations

import math

import numpy as np

from variants.base import CONTROLLED, SGD, Adam, AsWritten, ModelSpec, Momentum, Optimizer


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)  # shift for stability; the result is unchanged
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def flush_subnormals(a: np.ndarray) -> None:
    """Zero, in place, the values too small to be normal floats, as TensorFlow's CPU threads do
    in hardware (flush-to-zero), a mode NumPy cannot set. A moment whose gradient stays 0 (a
    weight of a pixel blank in the whole batch) decays through the subnormal range for a hundred
    steps, and arithmetic on subnormals is many times slower: unflushed, this variant's epochs
    on Fashion-MNIST slowed from 31k to 23k samples/s by the fifth."""
    a[np.abs(a) < np.finfo(a.dtype).tiny] = 0


def glorot_uniform(shapes: list[tuple[int, ...]], rng: np.random.Generator) -> list[np.ndarray]:
    """Kernels U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), zero biases: in float64, as
    NumPy makes them."""
    return [
        rng.uniform(-1, 1, s) * np.sqrt(6 / sum(s)) if len(s) == 2 else np.zeros(s) for s in shapes
    ]


class NumpyScratch:
    name = "numpy_scratch"
    api_level = "NumPy, no framework"
    level, rung = "NumPy", 0

    def build(
        self,
        spec: ModelSpec,
        optimizer: Optimizer,
        init_weights: list[np.ndarray] | None,
        *,
        as_written: AsWritten = CONTROLLED,
    ) -> None:
        self.rng = np.random.default_rng(as_written.seed)  # as written: NumPy's own RNG
        if init_weights is None:
            init_weights = glorot_uniform(spec.weight_shapes, self.rng)
        if as_written.optimizer_defaults and isinstance(optimizer, Adam):
            optimizer = Adam(optimizer.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)  # the paper's
        # as written, in NumPy's default float: float64
        self.params = [
            np.array(w, np.float64 if as_written.own_dtype else spec.dtype) for w in init_weights
        ]
        self.shuffle = as_written.shuffle
        self.opt = optimizer
        self.slots = [[np.zeros_like(p) for p in self.params] for _ in range(2)]  # m, v
        self.t = 0

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits, and the input of every layer (kept for the backward pass)."""
        acts = [x]
        for i in range(0, len(self.params), 2):
            W, b = self.params[i], self.params[i + 1]
            z = acts[-1] @ W + b  # (B, fan_out)
            if i + 2 < len(self.params):
                acts.append(np.maximum(z, 0.0))
        return z, acts

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        logits, acts = self.forward(x)
        logp = log_softmax(logits)
        n = len(y)
        loss = -logp[np.arange(n), y].mean()

        # d loss / d logits = (softmax - onehot) / n
        dz = np.exp(logp)
        dz[np.arange(n), y] -= 1.0
        dz /= n
        grads = [None] * len(self.params)
        for i in range(len(self.params) - 2, -1, -2):
            a = acts[i // 2]  # input of this layer, (B, fan_in)
            grads[i] = a.T @ dz  # dW: (fan_in, fan_out)
            grads[i + 1] = dz.sum(axis=0)  # db: (fan_out,)
            if i > 0:
                dz = (dz @ self.params[i].T) * (a > 0)  # back through W, then through ReLU
        self.apply(grads)
        return float(loss)

    def apply(self, grads: list[np.ndarray]) -> None:
        opt, (m, v) = self.opt, self.slots
        self.t += 1
        if isinstance(opt, Adam):
            # bias correction folded into the step size, epsilon outside the sqrt (as TF does);
            # a Python float, so float32 arrays are not promoted to float64
            lr_t = opt.lr * math.sqrt(1 - opt.beta_2**self.t) / (1 - opt.beta_1**self.t)
        for p, g, m_i, v_i in zip(self.params, grads, m, v, strict=True):
            if isinstance(opt, SGD):
                p -= opt.lr * g
            elif isinstance(opt, Momentum):
                m_i *= opt.momentum
                m_i -= opt.lr * g
                flush_subnormals(m_i)
                p += m_i
            elif isinstance(opt, Adam):
                m_i += (g - m_i) * (1 - opt.beta_1)
                flush_subnormals(m_i)
                v_i += (g * g - v_i) * (1 - opt.beta_2)
                p -= lr_t * m_i / (np.sqrt(v_i) + opt.epsilon)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        if self.shuffle:  # as written: a NumPy permutation of every epoch
            order = self.rng.permutation(len(x))
            x, y = x[order], y[order]
        starts = range(0, len(x), batch_size)
        return np.array(
            [self.train_step(x[s : s + batch_size], y[s : s + batch_size]) for s in starts]
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[0]

    def get_weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.params]
