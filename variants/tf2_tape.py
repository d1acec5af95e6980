"""The MLP in TF2 core: `tf.Variable` weights, a `tf.GradientTape` step and a Keras optimizer.

The same step runs three ways: eagerly, traced into a graph by `tf.function`, and compiled by
XLA (`tf.function(jit_compile=True)`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from variants.base import CONTROLLED, AsWritten, ModelSpec, Optimizer
from variants.keras_optimizers import keras_optimizer


def glorot_uniform(shape: tuple[int, ...], dtype: str) -> tf.Tensor:
    """Kernels as TF2 core guides write them: U(-l, l), l = sqrt(6 / (fan_in + fan_out)),
    drawn by TF's own RNG."""
    return tf.random.uniform(shape, -1, 1, dtype) * (6 / sum(shape)) ** 0.5


class TapeMLP:
    """The model and its training step; subclasses say only how the step is compiled."""

    def compile(self, step, input_signature):
        raise NotImplementedError

    def build(
        self,
        spec: ModelSpec,
        optimizer: Optimizer,
        init_weights: list[np.ndarray] | None,
        *,
        as_written: AsWritten = CONTROLLED,
    ) -> None:
        keras.config.set_floatx(spec.dtype)  # the optimizer's learning rate and constants
        tf.random.set_seed(as_written.seed)  # as written: TF's global seed
        if init_weights is None:  # as written: Glorot kernels and zero biases, drawn by TF
            init_weights = [
                glorot_uniform(s, spec.dtype) if len(s) == 2 else tf.zeros(s, spec.dtype)
                for s in spec.weight_shapes
            ]
        self.params = [tf.Variable(w, name=f"param{i}") for i, w in enumerate(init_weights)]
        self.optimizer = keras_optimizer(optimizer, as_written.optimizer_defaults)
        self.shuffle = as_written.shuffle
        # Create the slot variables (momentum, Adam's m and v) here: a tf.function whose first
        # trace creates variables is traced a second time.
        self.optimizer.build(self.params)
        # A None batch dimension: the short last batch reuses the same trace.
        signature = [
            tf.TensorSpec((None, spec.input_size), spec.dtype),
            tf.TensorSpec((None,), tf.int64),
        ]
        self.train_step = self.compile(self.step, signature)

    def forward(self, x: tf.Tensor) -> tf.Tensor:
        *hidden, (W, b) = zip(self.params[::2], self.params[1::2], strict=True)
        h = x
        for W_i, b_i in hidden:
            h = tf.nn.relu(h @ W_i + b_i)  # (B, fan_out)
        return h @ W + b  # (B, num_classes)

    def step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = self.forward(x)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        grads = tape.gradient(loss, self.params)
        self.optimizer.apply_gradients(zip(grads, self.params, strict=True))
        return loss

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.Tensor:
        # NumPy slices, one batch per step; the losses stay on the device until the epoch ends
        # (a `.numpy()` per step would wait for every step before starting the next).
        if self.shuffle:  # as written: every epoch shuffled by TF's own RNG
            order = tf.random.shuffle(tf.range(len(x)))
            x, y = tf.gather(x, order), tf.gather(y, order)
        steps = range(0, len(x), batch_size)
        return tf.stack(
            [self.train_step(x[i : i + batch_size], y[i : i + batch_size]) for i in steps]
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x).numpy()

    def get_weights(self) -> list[np.ndarray]:
        return [p.numpy() for p in self.params]


class TF2Eager(TapeMLP):
    name = "tf2_eager"
    api_level = "TF2 tf.Variable + GradientTape, eager"
    level, rung = "TF2 core", 0

    def compile(self, step, input_signature):
        return step  # every op runs as Python reaches it


class TF2Function(TapeMLP):
    name = "tf2_function"
    api_level = "TF2 tf.Variable + GradientTape in tf.function"
    level, rung = "TF2 core", 2

    def compile(self, step, input_signature):
        return tf.function(step, input_signature=input_signature)


class TF2FunctionXLA(TapeMLP):
    name = "tf2_function_xla"
    api_level = "TF2 tf.Variable + GradientTape in tf.function(jit_compile=True)"
    level, rung = "TF2 core", 3

    def compile(self, step, input_signature):
        # XLA compiles once per concrete input shape: the short last batch is compiled once more.
        return tf.function(step, input_signature=input_signature, jit_compile=True)


class TF2TFData(TF2Function):
    """The tf.function step fed by a `tf.data` pipeline, as most TF2 tutorials feed it. The
    pipeline is rebuilt each epoch from the epoch's arrays (the harness owns their order)."""

    name = "tf2_tfdata"
    api_level = "TF2 GradientTape in tf.function, fed by tf.data"
    level, rung = "TF2 core", 1

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.Tensor:
        batches = tf.data.Dataset.from_tensor_slices((x, y))  # in order
        # as written: tf.data's shuffle, over the whole epoch
        batches = (batches.shuffle(len(x)) if self.shuffle else batches).batch(batch_size)
        batches = batches.prefetch(tf.data.AUTOTUNE)  # the next batch is made while one trains
        return tf.stack([self.train_step(xb, yb) for xb, yb in batches])
