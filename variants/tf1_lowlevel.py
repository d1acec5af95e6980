"""The MLP as a TF1 graph at the lowest level: `tf.gradients` for the backward pass and the
optimizer written out as assign ops, run in a Session.

The graph is built inside its own `tf.Graph()` rather than after `disable_eager_execution()`,
which is process-wide and would break eager code and Keras running in the same process."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from variants.base import SGD, Adam, ModelSpec, Momentum, Optimizer

v1 = tf.compat.v1


def update_ops(opt: Optimizer, params: list[tf.Variable], grads: list[tf.Tensor]) -> list:
    """The assign ops of one optimizer step. New values are computed as tensors first, so every
    assign depends on the values it replaces and no control dependencies are needed."""
    if isinstance(opt, SGD):
        return [v1.assign_sub(p, opt.lr * g) for p, g in zip(params, grads, strict=True)]
    ops = []
    if isinstance(opt, Momentum):
        for p, g in zip(params, grads, strict=True):
            v = v1.Variable(tf.zeros(p.shape, p.dtype), trainable=False)  # velocity, shape of p
            v_new = opt.momentum * v - opt.lr * g
            ops += [v1.assign(v, v_new), v1.assign_add(p, v_new)]
        return ops
    if isinstance(opt, Adam):
        step = v1.Variable(0.0, dtype=params[0].dtype, trainable=False)
        t = step + 1.0
        # The bias correction is folded into the step size and epsilon sits outside the sqrt,
        # as in Keras and tf.compat.v1.train.AdamOptimizer.
        lr_t = opt.lr * tf.sqrt(1.0 - opt.beta_2**t) / (1.0 - opt.beta_1**t)
        ops.append(v1.assign(step, t))
        for p, g in zip(params, grads, strict=True):
            m = v1.Variable(tf.zeros(p.shape, p.dtype), trainable=False)  # first moment
            v = v1.Variable(tf.zeros(p.shape, p.dtype), trainable=False)  # second moment
            m_new = m + (g - m) * (1.0 - opt.beta_1)
            v_new = v + (g * g - v) * (1.0 - opt.beta_2)
            ops += [v1.assign(m, m_new), v1.assign(v, v_new)]
            ops.append(v1.assign_sub(p, lr_t * m_new / (tf.sqrt(v_new) + opt.epsilon)))
        return ops
    raise TypeError(f"unknown optimizer {opt!r}")


class TF1LowLevel:
    name = "tf1_lowlevel"
    api_level = "tf.compat.v1 graph, tf.gradients + manual updates"
    level, rung = "tf.compat.v1", 1

    def build(self, spec: ModelSpec, optimizer: Optimizer, init_weights: list[np.ndarray]) -> None:
        graph = tf.Graph()
        with graph.as_default():
            # A None batch dimension lets one graph take full batches, the short last one and
            # the whole test set.
            self.x = v1.placeholder(spec.dtype, (None, spec.input_size), name="x")
            self.y = v1.placeholder(tf.int64, (None,), name="y")
            # The harness' arrays become the variables' initial values.
            self.params = [v1.Variable(w, name=f"param{i}") for i, w in enumerate(init_weights)]

            *hidden, (W, b) = zip(self.params[::2], self.params[1::2], strict=True)
            h = self.x
            for W_i, b_i in hidden:
                h = tf.nn.relu(tf.matmul(h, W_i) + b_i)  # (B, fan_out)
            self.logits = tf.matmul(h, W) + b  # (B, num_classes)

            self.loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.y, logits=self.logits)
            )
            grads = tf.gradients(self.loss, self.params)  # one tensor per param, same shape
            self.train_op = tf.group(*update_ops(optimizer, self.params, grads))
            init = v1.global_variables_initializer()
        graph.finalize()  # any op added from now on would be a bug (and a leak)
        self.sess = v1.Session(graph=graph)
        self.sess.run(init)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        losses = []
        for s in range(0, len(x), batch_size):
            feed = {self.x: x[s : s + batch_size], self.y: y[s : s + batch_size]}
            # One run: the loss is computed from the weights before this step's update.
            loss, _ = self.sess.run([self.loss, self.train_op], feed)
            losses.append(loss)
        return np.array(losses)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(self.logits, {self.x: x})

    def get_weights(self) -> list[np.ndarray]:
        return self.sess.run(self.params)
