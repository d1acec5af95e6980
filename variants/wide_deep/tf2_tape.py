"""Wide & deep in TF2 core: `tf.Variable` weights, a `tf.GradientTape` step over both heads'
weighted losses, traced into a graph by `tf.function`, and a Keras optimizer."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from variants.base import CONTROLLED, AsWritten, Optimizer, WideDeepSpec
from variants.keras_optimizers import keras_optimizer


def glorot_uniform(shape: tuple[int, ...], dtype: str) -> tf.Tensor:
    """Kernels as TF2 core guides write them: U(-l, l), l = sqrt(6 / (fan_in + fan_out)),
    drawn by TF's own RNG."""
    return tf.random.uniform(shape, -1, 1, dtype) * (6 / sum(shape)) ** 0.5


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


class TF2Function:
    name = "tf2_function"
    api_level = "TF2 tf.Variable + GradientTape in tf.function"
    level, rung = "TF2 core", 2
    task = "wide-deep"

    def compile(self, step, input_signature):
        return tf.function(step, input_signature=input_signature)

    def build(
        self,
        spec: WideDeepSpec,
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
        self.loss_weights = spec.loss_weights
        self.optimizer = keras_optimizer(optimizer, as_written.optimizer_defaults)
        self.shuffle = as_written.shuffle
        # Create the slot variables (momentum, Adam's m and v) here: a tf.function whose first
        # trace creates variables is traced a second time.
        self.optimizer.build(self.params)
        # A None batch dimension: the short last batch reuses the same trace.
        signature = [
            tf.TensorSpec((None, spec.wide_size), spec.dtype),
            tf.TensorSpec((None, spec.input_size), spec.dtype),
            tf.TensorSpec((None,), tf.int64),
        ]
        self.train_step = self.compile(self.step, signature)

    def forward(self, wide: tf.Tensor, deep: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The main and the auxiliary logits, (B, num_classes) each."""
        *hidden, (W_main, b_main), (W_aux, b_aux) = zip(
            self.params[::2], self.params[1::2], strict=True
        )
        h = deep
        for W_i, b_i in hidden:
            h = tf.nn.relu(h @ W_i + b_i)  # (B, fan_out)
        # The wide input skips the deep path and meets the last hidden layer in the main head.
        return tf.concat([wide, h], axis=1) @ W_main + b_main, h @ W_aux + b_aux

    def step(self, wide: tf.Tensor, deep: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        w_main, w_aux = self.loss_weights
        with tf.GradientTape() as tape:
            main, aux = self.forward(wide, deep)
            main_loss, aux_loss = cross_entropy(y, main), cross_entropy(y, aux)
            loss = w_main * main_loss + w_aux * aux_loss
        grads = tape.gradient(loss, self.params)
        self.optimizer.apply_gradients(zip(grads, self.params, strict=True))
        return tf.stack([loss, main_loss, aux_loss])

    def train_epoch(self, x: tuple, y: np.ndarray, batch_size: int) -> tf.Tensor:
        # NumPy slices, one batch per step; the losses stay on the device until the epoch ends
        # (a `.numpy()` per step would wait for every step before starting the next).
        wide, deep = x
        if self.shuffle:  # as written: every epoch shuffled by TF's own RNG
            order = tf.random.shuffle(tf.range(len(y)))
            wide, deep, y = (tf.gather(a, order) for a in (wide, deep, y))
        steps = range(0, len(y), batch_size)
        return tf.stack(  # (steps, 3): total, main, aux
            [
                self.train_step(
                    wide[i : i + batch_size], deep[i : i + batch_size], y[i : i + batch_size]
                )
                for i in steps
            ]
        )

    def predict(self, x: tuple) -> np.ndarray:
        return self.forward(*x)[0].numpy()

    def get_weights(self) -> list[np.ndarray]:
        return [p.numpy() for p in self.params]
