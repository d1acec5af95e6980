"""The hand-written backward pass of the NumPy reference against finite differences."""

from __future__ import annotations

import numpy as np

from variants.base import SGD, ModelSpec
from variants.numpy_scratch import NumpyScratch, log_softmax


def loss_at(v: NumpyScratch, x, y) -> float:
    logp = log_softmax(v.forward(x)[0])
    return float(-logp[np.arange(len(y)), y].mean())


def test_backward_matches_central_differences():
    rng = np.random.default_rng(0)
    spec = ModelSpec(input_size=7, hidden=(6, 5), num_classes=10)
    weights = [rng.normal(0, 0.5, s) for s in spec.weight_shapes]
    weights = [w + 0.1 for w in weights]  # nonzero biases, so no unit sits exactly at a ReLU kink
    x = rng.normal(size=(9, 7))
    y = rng.integers(0, 10, size=9)

    v = NumpyScratch()
    v.build(spec, SGD(lr=1.0), weights)
    v.params = [w.astype(np.float64) for w in weights]  # float64 so differences are exact enough
    before = [p.copy() for p in v.params]
    v.train_step(x, y)  # with SGD(lr=1), before - after is the gradient
    analytic = [b - a for b, a in zip(before, v.params, strict=True)]

    eps = 1e-6
    for k, p in enumerate(before):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            for sign in (1, -1):
                v.params = [q.copy() for q in before]
                v.params[k][idx] += sign * eps
                numeric[idx] += sign * loss_at(v, x, y) / (2 * eps)
        np.testing.assert_allclose(analytic[k], numeric, rtol=1e-5, atol=1e-8)
