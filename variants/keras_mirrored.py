"""The MLP as a `keras.Sequential`, trained with `model.fit` under `tf.distribute.MirroredStrategy`:
data parallel over several devices of ONE process, one model replica per device.

On a machine without GPUs the CPU is split into `replicas` logical devices, which must happen
before TensorFlow initialises its devices. `fit` splits each global batch across the replicas
and sums their gradients; the model and the optimizer are created inside `strategy.scope()`.
"""

from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from variants.base import ModelSpec, Optimizer
from variants.keras_optimizers import keras_optimizer


def global_size(replica, n: tf.Tensor) -> tf.Tensor:
    """The global batch's size, from inside one replica (n is its slice's size)."""
    return n if replica is None else replica.all_reduce("sum", n)


class GlobalMeanCrossEntropy(keras.losses.Loss):
    """Cross-entropy as the GLOBAL batch's mean. By default each replica takes its slice's mean
    and fit divides it by the number of replicas, which weighs a sample of an unevenly split
    (short, last) batch by its slice's size: 2.7e-4 off the one-process loss after two epochs
    on digits. Summing each slice and dividing by the global size, as
    `tf.nn.compute_average_loss` does, is exact; with reduction "sum" fit does not rescale.
    """

    def __init__(self):
        super().__init__(name="global_mean_cross_entropy", reduction="sum")

    def call(self, y_true, y_pred):
        replica = tf.distribute.get_replica_context()  # None in Keras' symbolic build
        per_example = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        n = tf.cast(tf.shape(per_example)[0], per_example.dtype)
        return per_example / global_size(replica, n)


class GlobalBatchLoss(keras.metrics.Metric):
    """The loss of the current GLOBAL batch. Each replica sees only its slice, so the slices'
    sums and sizes are all-reduced; every replica then holds the same value. (`logs["loss"]`
    is the running mean of the epoch, not the loss of the step.)"""

    def __init__(self, name="batch_loss"):
        super().__init__(name=name)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        # "mean": read outside a replica, equal copies must not be summed
        self.value = self.add_variable(
            shape=(), initializer="zeros", name="value", aggregation="mean"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        replica = tf.distribute.get_replica_context()  # None in Keras' symbolic build
        per_example = self.loss_fn(y_true, y_pred)
        total = tf.reduce_sum(per_example)
        if replica is not None:
            total = replica.all_reduce("sum", total)
        n = tf.cast(tf.shape(per_example)[0], total.dtype)
        self.value.assign(total / global_size(replica, n))

    def result(self):
        return self.value


class KerasMirrored:
    name = "keras_mirrored"
    api_level = "Keras Sequential + fit under MirroredStrategy (one process)"
    distributed: ClassVar[bool] = True
    # One process holds every replica: started once, with `replicas` devices.
    in_one_process: ClassVar[bool] = True

    def __init__(self, replicas: int = 2) -> None:
        self.replicas = replicas

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        if not tf.config.list_physical_devices("GPU"):
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * self.replicas
            )
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        self.strategy = tf.distribute.MirroredStrategy(devices[: self.replicas])
        keras.config.set_floatx(spec.dtype)  # losses, metrics, the optimizer's learning rate
        keras.config.set_dtype_policy(spec.dtype)  # layers (fixed once the first is made)
        with self.strategy.scope():
            self.model = keras.Sequential(
                [
                    keras.Input(shape=(spec.input_size,)),
                    *[keras.layers.Dense(h, activation="relu") for h in spec.hidden],
                    keras.layers.Dense(spec.num_classes),
                ]
            )
            self.model.set_weights(init_weights)
            self.model.compile(
                optimizer=keras_optimizer(optimizer),
                loss=GlobalMeanCrossEntropy(),
                metrics=[GlobalBatchLoss()],
                jit_compile=False,  # "auto" turns XLA on when a GPU is visible
            )

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        losses = []
        keep = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: losses.append(logs["batch_loss"])
        )
        self.model.fit(
            x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[keep]
        )
        return np.array(losses)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.model(x))

    def get_weights(self) -> list[np.ndarray]:
        return self.model.get_weights()
