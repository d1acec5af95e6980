"""Wide & deep as a TF1 graph: two placeholders, variables, one train op minimizing the weighted
sum of both heads' losses, run in a Session.

The graph is built inside its own `tf.Graph()` rather than after `disable_eager_execution()`,
which is process-wide and would break eager code and Keras running in the same process."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from variants.base import CONTROLLED, SGD, Adam, AsWritten, Momentum, Optimizer, WideDeepSpec

v1 = tf.compat.v1


def make_optimizer(opt: Optimizer, dtype: str, defaults: bool = False) -> v1.train.Optimizer:
    # Tensors of the model's dtype: TF1 would make Python floats float32 tensors, rounded before
    # they are cast to the variables' dtype (in float64, enough to part from the reference).
    lr = tf.constant(opt.lr, dtype)
    if isinstance(opt, SGD):
        return v1.train.GradientDescentOptimizer(lr)
    if isinstance(opt, Momentum):
        # TF1 keeps a = m * a + g; w -= lr * a, which for a constant lr takes the same steps as
        # the v = m * v - lr * g; w += v of the spec (v = -lr * a).
        return v1.train.MomentumOptimizer(lr, tf.constant(opt.momentum, dtype))
    if isinstance(opt, Adam) and defaults:  # as written: TF1's own beta1, beta2, epsilon 1e-8
        return v1.train.AdamOptimizer(lr)
    if isinstance(opt, Adam):
        # TF1's default epsilon is 1e-8, the spec's is Keras' 1e-7: pass all of them.
        beta1, beta2, epsilon = (
            tf.constant(h, dtype) for h in (opt.beta_1, opt.beta_2, opt.epsilon)
        )
        return v1.train.AdamOptimizer(lr, beta1=beta1, beta2=beta2, epsilon=epsilon)
    raise TypeError(f"unknown optimizer {opt!r}")


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


class TF1Graph:
    name = "tf1_graph"
    api_level = "tf.compat.v1 graph + Session"
    level, rung = "tf.compat.v1", 0
    task = "wide-deep"

    def build(
        self,
        spec: WideDeepSpec,
        optimizer: Optimizer,
        init_weights: list[np.ndarray] | None,
        *,
        as_written: AsWritten = CONTROLLED,
    ) -> None:
        graph = tf.Graph()
        with graph.as_default():
            v1.set_random_seed(as_written.seed)  # as written: the graph-level seed
            # A None batch dimension lets one graph take full batches, the short last one and
            # the whole test set.
            self.x_wide = v1.placeholder(spec.dtype, (None, spec.wide_size), name="x_wide")
            self.x_deep = v1.placeholder(spec.dtype, (None, spec.input_size), name="x_deep")
            self.y = v1.placeholder(tf.int64, (None,), name="y")
            if init_weights is None:  # as written: get_variable's default initializer, zero biases
                init_weights = [
                    v1.glorot_uniform_initializer()(s, spec.dtype)
                    if len(s) == 2
                    else tf.zeros(s, spec.dtype)
                    for s in spec.weight_shapes
                ]
            # The harness' arrays (or the tensors above) become the variables' initial values.
            self.params = [v1.Variable(w, name=f"param{i}") for i, w in enumerate(init_weights)]

            *deep, (W_main, b_main), (W_aux, b_aux) = zip(
                self.params[::2], self.params[1::2], strict=True
            )
            h = self.x_deep
            for W_i, b_i in deep:
                h = tf.nn.relu(tf.matmul(h, W_i) + b_i)  # (B, fan_out)
            # The wide input skips the deep path and meets the last hidden layer in the main head.
            self.logits = tf.matmul(tf.concat([self.x_wide, h], axis=1), W_main) + b_main
            aux_logits = tf.matmul(h, W_aux) + b_aux  # (B, num_classes)

            main_loss = cross_entropy(self.y, self.logits)
            aux_loss = cross_entropy(self.y, aux_logits)
            w_main, w_aux = spec.loss_weights
            loss = w_main * main_loss + w_aux * aux_loss
            self.losses = tf.stack([loss, main_loss, aux_loss])  # what train_epoch returns
            self.train_op = make_optimizer(
                optimizer, spec.dtype, defaults=as_written.optimizer_defaults
            ).minimize(loss)
            init = v1.global_variables_initializer()
        graph.finalize()  # any op added from now on would be a bug (and a leak)
        self.sess = v1.Session(graph=graph)
        self.sess.run(init)
        self.rng, self.shuffle = np.random.RandomState(as_written.seed), as_written.shuffle

    def train_epoch(self, x: tuple, y: np.ndarray, batch_size: int) -> np.ndarray:
        wide, deep = x
        if self.shuffle:  # as written: a NumPy permutation of every epoch, fed to the graph
            order = self.rng.permutation(len(y))
            wide, deep, y = wide[order], deep[order], y[order]
        losses = []
        for s in range(0, len(y), batch_size):
            batch = slice(s, s + batch_size)
            feed = {self.x_wide: wide[batch], self.x_deep: deep[batch], self.y: y[batch]}
            # One run: the losses are computed from the weights before this step's update.
            step_losses, _ = self.sess.run([self.losses, self.train_op], feed)
            losses.append(step_losses)
        return np.array(losses)  # (steps, 3): total, main, aux

    def predict(self, x: tuple) -> np.ndarray:
        wide, deep = x
        return self.sess.run(self.logits, {self.x_wide: wide, self.x_deep: deep})

    def get_weights(self) -> list[np.ndarray]:
        return self.sess.run(self.params)
