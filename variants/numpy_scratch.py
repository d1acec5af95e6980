"""The MLP from scratch in NumPy: forward, backward and the optimizers written as math.

Every other variant is checked against this one, step by step."""

from __future__ import annotations

import math

import numpy as np

from variants.base import SGD, Adam, ModelSpec, Momentum, Optimizer


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)  # shift for stability; the result is unchanged
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class NumpyScratch:
    name = "numpy_scratch"
    api_level = "NumPy, no framework"
    level, rung = "NumPy", 0

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        self.params = [np.array(w, dtype=spec.dtype) for w in init_weights]
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
                p += m_i
            elif isinstance(opt, Adam):
                m_i += (g - m_i) * (1 - opt.beta_1)
                v_i += (g * g - v_i) * (1 - opt.beta_2)
                p -= lr_t * m_i / (np.sqrt(v_i) + opt.epsilon)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        starts = range(0, len(x), batch_size)
        return np.array(
            [self.train_step(x[s : s + batch_size], y[s : s + batch_size]) for s in starts]
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[0]

    def get_weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.params]
