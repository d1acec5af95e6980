"""Where a TensorFlow training step's time goes, part by part, against its GEMMs alone.

    python tests/benchmarks/step_anatomy.py --batch-sizes 128,512 --json out.json

The roofline fraction says how close a variant comes to its step's matrix products; this says
what the rest is. Each form below is the fastest TF2 shape (the whole epoch in one
`tf.function`, a `tf.range` loop over device-resident batches, as variants/tf2_epoch.py) and
adds one part to the one before:

    gemm        the step's matrix products only (harness.measure.roofline.gemm_shapes)
    forward     the model's forward pass and the loss
    gradients   and the backward pass (every gradient computed, none applied)
    sgd         and w -= lr * g
    adam        and Keras' Adam (what the tf2_* and keras_* variants run)
    adam_xla_update  the same, only the update compiled by XLA (called from the TF graph step)
    adam_fused  and TF1's fused Adam kernel (ResourceApplyAdam, what tf1_graph runs) instead

each also compiled whole by XLA (`jit_compile=True` on the step), but for the last two. Rounds
are interleaved, every form once per round in a rotating order, so the ratios compare timings
taken seconds apart; the report is each form's median time per step and the gemm form's time
over it (the fraction of the GEMM floor it reaches).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from harness.measure.roofline import gemm_shapes
from harness.task import glorot_uniform
from variants.base import Adam, ModelSpec
from variants.tf2_tape import TF2Eager


def make_forms(spec: ModelSpec, batch: int, steps: int) -> dict[str, Callable[[], tf.Tensor]]:
    rng = np.random.default_rng(0)
    weights = glorot_uniform(spec, rng)
    xs = tf.constant(rng.random((steps, batch, spec.input_size), dtype=np.float32))
    ys = tf.constant(rng.integers(0, spec.num_classes, (steps, batch)))
    # the tf2_* variants' own model, forward pass, Keras Adam and step (TF2Eager leaves the
    # step uncompiled: each form below compiles its own)
    adam = Adam()
    model = TF2Eager()
    model.build(spec, adam, weights)
    params, keras_adam = model.params, model.optimizer
    slots = [(tf.Variable(tf.zeros_like(p)), tf.Variable(tf.zeros_like(p))) for p in params]
    t = tf.Variable(0.0)
    operands = [
        (
            tf.constant(rng.random((m, k), dtype=np.float32)),
            tf.constant(rng.random((k, n), dtype=np.float32)),
        )
        for _, m, k, n in gemm_shapes(spec, batch)
    ]

    def loss_of(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        logits = model.forward(x)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))

    def gradients(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            loss = loss_of(x, y)
        return loss, tape.gradient(loss, params)

    def gemm(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        # each product's output feeds a sum, so none is dropped as unused
        return tf.add_n([tf.reduce_sum(a @ b) for a, b in operands])

    def forward(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return loss_of(x, y)

    def gradients_only(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        loss, grads = gradients(x, y)
        return loss + tf.add_n([tf.reduce_sum(g) for g in grads]) * 0

    def sgd(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        loss, grads = gradients(x, y)
        for p, g in zip(params, grads, strict=True):
            p.assign_sub(adam.lr * g)
        return loss

    # the update alone compiled by XLA, called from the TF graph step: each framework's half
    xla_update = tf.function(
        lambda grads: keras_adam.apply_gradients(zip(grads, params, strict=True)),
        jit_compile=True,
    )

    def adam_xla_update(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        loss, grads = gradients(x, y)
        xla_update(grads)
        return loss

    def fused_adam(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        loss, grads = gradients(x, y)
        t.assign_add(1.0)
        for p, (m, v), g in zip(params, slots, grads, strict=True):
            tf.raw_ops.ResourceApplyAdam(
                var=p.handle, m=m.handle, v=v.handle,
                beta1_power=adam.beta_1**t, beta2_power=adam.beta_2**t, lr=adam.lr,
                beta1=adam.beta_1, beta2=adam.beta_2, epsilon=adam.epsilon, grad=g,
            )  # fmt: skip
        return loss

    steps_of = {
        "gemm": gemm, "forward": forward, "gradients": gradients_only, "sgd": sgd,
        "adam": model.step, "adam_xla_update": adam_xla_update, "adam_fused": fused_adam,
    }  # fmt: skip
    forms = {}
    for name, step in steps_of.items():
        for xla in (False, True):
            if name in ("adam_fused", "adam_xla_update") and xla:
                continue  # all of the step in XLA: the `adam xla` row
            forms[name + (" xla" if xla else "")] = whole_epoch(
                tf.function(step, jit_compile=xla), xs, ys
            )
    return forms


def whole_epoch(
    step: Callable[..., tf.Tensor], xs: tf.Tensor, ys: tf.Tensor
) -> Callable[[], tf.Tensor]:
    """Every step of the epoch in one call, as variants/tf2_epoch.py runs them."""

    @tf.function
    def epoch() -> tf.Tensor:
        out = tf.TensorArray(tf.float32, size=len(xs))
        for i in tf.range(len(xs)):
            out = out.write(i, step(xs[i], ys[i]))
        return out.stack()

    return epoch


def measure(spec: ModelSpec, batch: int, steps: int, rounds: int) -> dict[str, list[float]]:
    forms = make_forms(spec, batch, steps)
    for run in forms.values():  # trace, compile, warm the thread pools
        run().numpy()
        run().numpy()
    names = list(forms)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            forms[name]().numpy()
            seconds[name].append((time.perf_counter() - t0) / steps)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", default="512,256")
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed call")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", help="write every round's time per step here")
    args = parser.parse_args()
    hidden = tuple(int(w) for w in args.hidden.split(","))
    spec = ModelSpec(input_size=784, hidden=hidden, num_classes=10)
    report = {}
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        seconds = measure(spec, batch, args.steps, args.rounds)
        report[batch] = seconds
        floor = statistics.median(seconds["gemm"])
        print(
            f"\n{spec.layer_sizes} batch {batch}: ms per step (median, quartiles), GEMM floor / it"
        )
        for name, times in seconds.items():
            q1, med, q3 = np.percentile(times, [25, 50, 75])
            print(
                f"  {name:16s} {med * 1e3:7.3f}  ({q1 * 1e3:.3f}-{q3 * 1e3:.3f})",
                f"{floor / med:5.2f}",
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"layer_sizes": spec.layer_sizes, "seconds_per_step": report}, f, indent=1)


if __name__ == "__main__":
    main()
