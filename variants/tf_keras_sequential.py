"""The MLP as a legacy Keras 2 `Sequential` (the `tf_keras` package, formerly `tf.keras`),
trained with `model.fit` in one process.

TensorFlow 2.16 made Keras 3 its `tf.keras`; code written for Keras 2 keeps running by
importing `tf_keras` instead. This is that code, measured beside its Keras 3 twin
(`keras_sequential`), for whoever weighs the migration.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from variants.base import SGD, Adam, ModelSpec, Momentum, Optimizer


def keras2_optimizer(opt: Optimizer) -> tf_keras.optimizers.Optimizer:
    if isinstance(opt, SGD):
        return tf_keras.optimizers.SGD(learning_rate=opt.lr)
    if isinstance(opt, Momentum):
        return tf_keras.optimizers.SGD(learning_rate=opt.lr, momentum=opt.momentum)
    if isinstance(opt, Adam):
        return tf_keras.optimizers.Adam(
            learning_rate=opt.lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon
        )
    raise TypeError(f"unknown optimizer {opt!r}")


class BatchLoss(tf_keras.metrics.Metric):
    """The loss of the current batch only: `logs["loss"]` is the running mean of the epoch."""

    def __init__(self, name="batch_loss"):
        super().__init__(name=name)
        self.loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.value = self.add_weight(name="value", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.value.assign(self.loss_fn(y_true, y_pred))

    def result(self):
        return self.value


class TFKerasSequential:
    name = "tf_keras_sequential"
    api_level = "Keras 2 (tf_keras) Sequential + fit"
    level, rung = "tf.keras 2 (legacy)", 0

    def make_model(self, spec: ModelSpec) -> tf_keras.Model:
        return tf_keras.Sequential(
            [
                tf_keras.Input(shape=(spec.input_size,)),
                *[tf_keras.layers.Dense(h, activation="relu") for h in spec.hidden],
                tf_keras.layers.Dense(spec.num_classes),
            ]
        )

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        tf_keras.backend.set_floatx(spec.dtype)  # layers, loss, metrics, optimizer: all in it
        self.model = self.make_model(spec)
        self.model.set_weights(init_weights)
        self.model.compile(
            optimizer=keras2_optimizer(optimizer),
            loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[BatchLoss()],
            jit_compile=False,  # XLA is measured by a variant of its own
        )

    def batches(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)  # in order

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        losses = []
        keep = tf_keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: losses.append(logs["batch_loss"])
        )
        self.model.fit(self.batches(x, y, batch_size), epochs=1, verbose=0, callbacks=[keep])
        return np.array(losses)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model(x).numpy()

    def get_weights(self) -> list[np.ndarray]:
        return self.model.get_weights()
