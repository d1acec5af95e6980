"""Wide & deep from scratch in NumPy: two inputs, two outputs, backprop by hand through both
heads and the concatenation.

Every other wide & deep variant is checked against this one, step by step."""

from __future__ import annotations

import math

import numpy as np

from variants.base import CONTROLLED, SGD, Adam, AsWritten, Momentum, Optimizer, WideDeepSpec


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)  # shift for stability; the result is unchanged
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    logp = log_softmax(logits)
    n = len(y)
    dz = np.exp(logp)
    dz[np.arange(n), y] -= 1.0
    return -logp[np.arange(n), y].mean(), dz / n


def flush_subnormals(a: np.ndarray) -> None:
    """Zero, in place, what is too small to be a normal float, as TensorFlow's CPU threads do
    (flush-to-zero): a moment of a weight whose pixel stays blank decays through that range,
    where arithmetic is many times slower (variants/numpy_scratch.py)."""
    a[np.abs(a) < np.finfo(a.dtype).tiny] = 0


def glorot_uniform(shapes: list[tuple[int, ...]], rng: np.random.Generator) -> list[np.ndarray]:
    """Kernels U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), zero biases, in float64."""
    return [
        rng.uniform(-1, 1, s) * np.sqrt(6 / sum(s)) if len(s) == 2 else np.zeros(s) for s in shapes
    ]


class NumpyScratch:
    name = "numpy_scratch"
    api_level = "NumPy, no framework"
    level, rung = "NumPy", 0
    task = "wide-deep"

    def build(
        self,
        spec: WideDeepSpec,
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
        dtype = np.float64 if as_written.own_dtype else spec.dtype
        self.params = [np.array(w, dtype) for w in init_weights]
        self.wide_size, self.loss_weights = spec.wide_size, spec.loss_weights
        self.shuffle = as_written.shuffle
        self.opt = optimizer
        self.slots = [[np.zeros_like(p) for p in self.params] for _ in range(2)]  # m, v
        self.t = 0

    def forward(self, wide: np.ndarray, deep: np.ndarray) -> tuple:
        """Main and auxiliary logits, and the input of every deep layer (for backprop)."""
        *hidden, W_main, b_main, W_aux, b_aux = self.params
        acts = [deep]
        for W, b in zip(hidden[::2], hidden[1::2], strict=True):
            acts.append(np.maximum(acts[-1] @ W + b, 0.0))
        h = acts[-1]
        main = np.concatenate([wide, h], axis=1) @ W_main + b_main
        return main, h @ W_aux + b_aux, acts

    def train_step(self, wide: np.ndarray, deep: np.ndarray, y: np.ndarray) -> list[float]:
        main, aux, acts = self.forward(wide, deep)
        (w_main, w_aux), h = self.loss_weights, acts[-1]
        main_loss, d_main = cross_entropy(main, y)
        aux_loss, d_aux = cross_entropy(aux, y)
        d_main, d_aux = w_main * d_main, w_aux * d_aux  # each head's share of the total loss
        *hidden, W_main, _, W_aux, _ = self.params
        grads = [
            np.concatenate([wide, h], axis=1).T @ d_main,
            d_main.sum(axis=0),
            h.T @ d_aux,
            d_aux.sum(axis=0),
        ]
        # The last hidden layer feeds both heads: its gradient is the sum of both, and only the
        # rows of W_main after the wide input's reach it (the wide input has no parameters).
        dh = d_main @ W_main[self.wide_size :].T + d_aux @ W_aux.T
        for i in range(len(hidden) - 2, -1, -2):
            dz = dh * (acts[i // 2 + 1] > 0)  # back through the ReLU
            grads[:0] = [acts[i // 2].T @ dz, dz.sum(axis=0)]
            dh = dz @ hidden[i].T
        self.apply(grads)
        return [w_main * main_loss + w_aux * aux_loss, main_loss, aux_loss]

    def apply(self, grads: list[np.ndarray]) -> None:
        opt, (m, v) = self.opt, self.slots
        self.t += 1
        if isinstance(opt, Adam):
            # bias correction folded into the step size, epsilon outside the sqrt (as TF does)
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

    def train_epoch(self, x: tuple, y: np.ndarray, batch_size: int) -> np.ndarray:
        wide, deep = x
        if self.shuffle:  # as written: a NumPy permutation of every epoch
            order = self.rng.permutation(len(y))
            wide, deep, y = wide[order], deep[order], y[order]
        return np.array(
            [
                self.train_step(
                    wide[s : s + batch_size], deep[s : s + batch_size], y[s : s + batch_size]
                )
                for s in range(0, len(y), batch_size)
            ]
        )

    def predict(self, x: tuple) -> np.ndarray:
        return self.forward(*x)[0]

    def get_weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.params]
