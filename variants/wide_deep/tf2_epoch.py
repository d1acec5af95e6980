"""Wide & deep in the fastest TF2 form: the whole epoch in one `tf.function` call.

A tf.function step called from Python pays the Python-to-runtime crossing once per step: the
argument conversion, the trace lookup and the launch. Here Python calls once per epoch:

1. the epoch's batches of both inputs go to the device once, as (steps, batch, features)
   tensors;
2. a `for i in tf.range(steps)` loop, which AutoGraph turns into a graph `while_loop`, runs
   every step inside the runtime;
3. the losses collect in a `tf.TensorArray` and come back once, at the end.

With `jit_compile=True` on the step, XLA fuses each step's elementwise work (bias, ReLU, the
concatenation, both softmaxes, the optimizer update) around the GEMMs: the best TF2 form on a
CPU.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from variants.wide_deep.tf2_tape import TF2Function


class TF2EpochFunctionXLA(TF2Function):
    name = "tf2_epoch_function_xla"
    api_level = "TF2 GradientTape, the whole epoch in one tf.function, step compiled by XLA"
    level, rung = "TF2 core", 5

    def compile(self, step, input_signature):
        self.run_steps = tf.function(
            self.run_all,
            # (steps, batch, features) for each input and (steps, batch): any step count
            input_signature=[tf.TensorSpec((None, *s.shape), s.dtype) for s in input_signature],
        )
        # XLA compiles once per shape: full batches once, the short last batch once more.
        return tf.function(step, input_signature=input_signature, jit_compile=True)

    def run_all(self, wides: tf.Tensor, deeps: tf.Tensor, ys: tf.Tensor) -> tf.Tensor:
        steps = tf.shape(ys)[0]
        # each step's (total, main, aux); the shape given so that an epoch of no full batch
        # still stacks to (0, 3)
        losses = tf.TensorArray(deeps.dtype, size=steps, element_shape=(3,))
        for i in tf.range(steps):  # a graph while_loop: no Python between steps
            losses = losses.write(i, self.train_step(wides[i], deeps[i], ys[i]))
        return losses.stack()  # (steps, 3): total, main, aux

    def train_epoch(self, x: tuple, y: np.ndarray, batch_size: int) -> tf.Tensor:
        wide, deep = x
        if self.shuffle:  # as written: every epoch shuffled by TF's own RNG
            order = tf.random.shuffle(tf.range(len(y)))
            wide, deep, y = (tf.gather(a, order) for a in (wide, deep, y))
        full = len(y) // batch_size * batch_size
        # (steps, batch, features) and (steps, batch)
        wides = tf.reshape(wide[:full], (-1, batch_size, wide.shape[1]))
        deeps = tf.reshape(deep[:full], (-1, batch_size, deep.shape[1]))
        losses = self.run_steps(wides, deeps, tf.reshape(y[:full], (-1, batch_size)))
        if full < len(y):  # the short last batch: one more step, with its own shape
            last = self.train_step(wide[full:], deep[full:], y[full:])
            losses = tf.concat([losses, [last]], axis=0)
        return losses
