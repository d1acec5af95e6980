"""The MLP's GradientTape step under `tf.distribute.MultiWorkerMirroredStrategy`: data parallel
over worker processes, one replica each, gradients summed across workers by all-reduce (RING).

Every worker runs this same code. Which worker it is and who its peers are come from the
TF_CONFIG environment variable, which the strategy reads, e.g. for the first of two workers:

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}'

Without TF_CONFIG the strategy has one worker and this trains alone. Each step takes the same
global batch on every worker; replica i trains on the i-th of equal consecutive slices of it.
"""

from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from variants.base import ModelSpec, Optimizer
from variants.keras_optimizers import keras_optimizer

# A peer that dies or freezes fails the step after this long instead of blocking it for ever.
COLLECTIVE_TIMEOUT_SECONDS = 60


class TF2MultiWorker:
    name = "tf2_multiworker"
    api_level = "TF2 GradientTape step under MultiWorkerMirroredStrategy"
    distributed: ClassVar[bool] = True

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        # Connects to every peer in TF_CONFIG: it returns once the whole cluster is up.
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING,
                timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS,
            )
        )
        keras.config.set_floatx(spec.dtype)  # the optimizer's learning rate and constants
        with self.strategy.scope():
            # Mirrored variables: one copy per replica, created equal and updated equally.
            self.params = [tf.Variable(w, name=f"param{i}") for i, w in enumerate(init_weights)]
            self.optimizer = keras_optimizer(optimizer)
            self.optimizer.build(self.params)

    def forward(self, x: tf.Tensor) -> tf.Tensor:
        *hidden, (W, b) = zip(self.params[::2], self.params[1::2], strict=True)
        h = x
        for W_i, b_i in hidden:
            h = tf.nn.relu(h @ W_i + b_i)  # (B / replicas, fan_out)
        return h @ W + b  # (B / replicas, num_classes)

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, global_batch_size: tf.Tensor) -> tf.Tensor:
        """One replica's share: its slice's loss summed and divided by the GLOBAL batch size, so
        that the gradients the optimizer all-reduces (sums) are those of the global mean."""
        with tf.GradientTape() as tape:
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=self.forward(x)
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
        grads = tape.gradient(loss, self.params)
        self.optimizer.apply_gradients(zip(grads, self.params, strict=True))
        return loss

    @tf.function(reduce_retracing=True)  # the short last batch: one more trace, not one per step
    def train_step(self, x, y, global_batch_size: tf.Tensor) -> tf.Tensor:
        losses = self.strategy.run(self.replica_step, args=(x, y, global_batch_size))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def split(self, batch: np.ndarray):
        """The global batch as one slice per replica, the i-th slice to replica i."""
        slices = np.array_split(batch, self.strategy.num_replicas_in_sync)
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(slices[ctx.replica_id_in_sync_group])
        )

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        losses = []
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            size = tf.constant(len(xb), tf.int64)
            losses.append(self.train_step(self.split(xb), self.split(yb), size))
        return np.array([loss.numpy() for loss in losses])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x).numpy()

    def get_weights(self) -> list[np.ndarray]:
        return [p.numpy() for p in self.params]
