"""The NumPy reference's hand-written math: its backward pass against finite differences, and its
optimizer state kept out of the subnormal range, as TensorFlow's flush-to-zero keeps it."""

from __future__ import annotations

import numpy as np
import pytest

from variants import numpy_scratch
from variants.base import SGD, Adam, ModelSpec, Momentum
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


def subnormal_steps(monkeypatch, flush: bool, optimizer) -> int:
    """Steps after which the reference's first moments held a subnormal float32. Input 0 is
    blank after the first batch, as a border pixel is: its weights' moments decay by 0.9 a
    step, through the subnormal range from about step 760 to step 920."""
    if not flush:
        monkeypatch.setattr(numpy_scratch, "flush_subnormals", lambda a: None)
    rng = np.random.default_rng(0)
    spec = ModelSpec(input_size=4, hidden=(3,), num_classes=10)
    v = NumpyScratch()
    v.build(spec, optimizer, [rng.normal(0, 0.5, s) for s in spec.weight_shapes])
    x = rng.normal(size=(8, 4)).astype(np.float32)
    y = rng.integers(0, 10, size=8)
    tiny = np.finfo(np.float32).tiny
    seen = 0
    for step in range(1000):
        v.train_step(x if step == 0 else x * [0, 1, 1, 1], y)
        m = v.slots[0][0]  # the first kernel's moments; row 0 belongs to input 0
        seen += bool(((m != 0) & (np.abs(m) < tiny)).any())
    return seen


@pytest.mark.parametrize("optimizer", [Adam(), Momentum(lr=0.01)], ids=["adam", "momentum"])
def test_no_moment_is_ever_subnormal(monkeypatch, optimizer):
    """TensorFlow's CPU threads flush subnormals to zero; the reference zeroes them by hand,
    or arithmetic on them slows it by a third on Fashion-MNIST."""
    assert subnormal_steps(monkeypatch, flush=True, optimizer=optimizer) == 0
    # the same training without the flush: the moments do pass through the range
    assert subnormal_steps(monkeypatch, flush=False, optimizer=optimizer) > 50
