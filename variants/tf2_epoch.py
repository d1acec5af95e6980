"""The fastest TF2 forms: the whole epoch in one `tf.function` call.

A tf.function step called from Python pays the Python-to-runtime crossing once per step: the
argument conversion, the trace lookup and the launch. Here Python calls once per epoch:

1. the epoch's batches go to the device once, as one (steps, batch, features) tensor;
2. a `for i in tf.range(steps)` loop, which AutoGraph turns into a graph `while_loop`, runs
   every step inside the runtime;
3. the losses collect in a `tf.TensorArray` and come back once, at the end.

With `jit_compile=True` on the step, XLA fuses each step's elementwise work (bias, ReLU, the
softmax, the optimizer update) around the GEMMs: the best TF2 form on a CPU.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from variants.tf2_tape import TapeMLP


class TF2EpochFunction(TapeMLP):
    name = "tf2_epoch_function"
    api_level = "TF2 GradientTape, the whole epoch in one tf.function"
    level, rung = "TF2 core", 4
    jit_compile = False

    def compile(self, step, input_signature):
        self.run_steps = tf.function(
            self.run_all,
            # (steps, batch, features) and (steps, batch): any step count
            input_signature=[tf.TensorSpec((None, *s.shape), s.dtype) for s in input_signature],
        )
        return tf.function(step, input_signature=input_signature, jit_compile=self.jit_compile)

    def run_all(self, xs: tf.Tensor, ys: tf.Tensor) -> tf.Tensor:
        steps = tf.shape(xs)[0]
        losses = tf.TensorArray(xs.dtype, size=steps)
        for i in tf.range(steps):  # a graph while_loop: no Python between steps
            losses = losses.write(i, self.train_step(xs[i], ys[i]))
        return losses.stack()

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.Tensor:
        if self.shuffle:  # as written: every epoch shuffled by TF's own RNG
            order = tf.random.shuffle(tf.range(len(x)))
            x, y = tf.gather(x, order), tf.gather(y, order)
        full = len(x) // batch_size * batch_size
        xs = tf.reshape(x[:full], (-1, batch_size, x.shape[1]))  # (steps, batch, features)
        ys = tf.reshape(y[:full], (-1, batch_size))
        losses = self.run_steps(xs, ys)
        if full < len(x):  # the short last batch: one more step, with its own shape
            losses = tf.concat([losses, [self.train_step(x[full:], y[full:])]], axis=0)
        return losses


class TF2EpochFunctionXLA(TF2EpochFunction):
    name = "tf2_epoch_function_xla"
    api_level = "TF2 GradientTape, the whole epoch in one tf.function, step compiled by XLA"
    level, rung = "TF2 core", 5
    # XLA compiles once per shape: full batches once, the short last batch once more.
    jit_compile = True
