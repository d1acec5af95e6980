"""The legacy Keras 2 (`tf_keras`) `Sequential` + `fit` under
`tf.distribute.MultiWorkerMirroredStrategy`: data parallel over worker processes.

Keras 3 `fit` does not support this strategy (keras-team/keras#20585); Keras 2 is the
documented route. Every worker runs this same code; the cluster and this worker's place in it
come from TF_CONFIG (see tf2_multiworker.py). Each global batch is split across the workers
by `fit` itself: the dataset is batched with the GLOBAL batch size and sharded by data.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import tensorflow as tf
import tf_keras

from variants.base import ModelSpec, Optimizer
from variants.tf_keras_sequential import TFKerasSequential, keras2_optimizer

# A peer that dies or freezes fails the step after this long instead of blocking it for ever.
COLLECTIVE_TIMEOUT_SECONDS = 60


def global_sum(replica, value: tf.Tensor) -> tf.Tensor:
    """`value` summed over every replica of every worker (as is, outside a replica)."""
    return value if replica is None else replica.all_reduce("sum", value)


class GlobalMeanCrossEntropy(tf_keras.losses.Loss):
    """Cross-entropy as the GLOBAL batch's mean. By default each replica takes its slice's mean
    and fit divides it by the number of replicas, which weighs a sample of an unevenly split
    (short, last) batch by its slice's size. Summing each slice and dividing by the global
    size, as `tf.nn.compute_average_loss` does, is exact; with reduction SUM fit does not
    rescale."""

    def __init__(self):
        super().__init__(reduction=tf_keras.losses.Reduction.SUM, name="global_mean_xent")

    def call(self, y_true, y_pred):
        replica = tf.distribute.get_replica_context()  # None in a cross-replica build
        per_example = tf_keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=True
        )
        n = tf.cast(tf.shape(per_example)[0], per_example.dtype)
        return per_example / global_sum(replica, n)


class GlobalBatchLoss(tf_keras.metrics.Metric):
    """The loss of the current GLOBAL batch. Each replica adds its share, its slice's summed
    loss over the global batch size, to a metric variable that sums the replicas when read."""

    def __init__(self, name="batch_loss"):
        super().__init__(name=name)
        self.value = self.add_weight(name="value", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        replica = tf.distribute.get_replica_context()
        per_example = tf_keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=True
        )
        n = tf.cast(tf.shape(per_example)[0], per_example.dtype)
        self.value.assign(tf.reduce_sum(per_example) / global_sum(replica, n))

    def result(self):
        return self.value


class TFKerasMultiWorker(TFKerasSequential):
    name = "tf_keras_multiworker"
    api_level = "Keras 2 (tf_keras) Sequential + fit under MultiWorkerMirroredStrategy"
    distributed: ClassVar[bool] = True
    rung = None  # data parallel: compared by the scaling report, not on the one-process ladder

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        # Connects to every peer in TF_CONFIG: it returns once the whole cluster is up.
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING,
                timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS,
            )
        )
        tf_keras.backend.set_floatx(spec.dtype)  # layers, loss, metrics, optimizer: all in it
        with self.strategy.scope():
            self.model = self.make_model(spec)
            self.model.set_weights(init_weights)
            self.model.compile(
                optimizer=keras2_optimizer(optimizer),
                loss=GlobalMeanCrossEntropy(),
                metrics=[GlobalBatchLoss()],
                jit_compile=False,
            )
        # the metrics are read already summed over the replicas: "auto" would sum them again
        self.model.distribute_reduction_method = "first"

    def batches(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
        options = tf.data.Options()
        # every worker holds the same arrays: split each global batch, never whole files
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return super().batches(x, y, batch_size).with_options(options)
