"""The contract's optimizers as Keras optimizers: what the Keras variants and TF2 core, which
steps its `tf.Variable`s with Keras optimizers too, share."""

import keras

from variants.base import SGD, Adam, Momentum, Optimizer


def keras_optimizer(opt: Optimizer, defaults: bool = False) -> keras.optimizers.Optimizer:
    if isinstance(opt, SGD):
        return keras.optimizers.SGD(learning_rate=opt.lr)
    if isinstance(opt, Momentum):
        return keras.optimizers.SGD(learning_rate=opt.lr, momentum=opt.momentum)
    if isinstance(opt, Adam) and defaults:  # as written: Keras' own beta_1, beta_2, epsilon
        return keras.optimizers.Adam(learning_rate=opt.lr)
    if isinstance(opt, Adam):
        return keras.optimizers.Adam(
            learning_rate=opt.lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon
        )
    raise TypeError(f"unknown optimizer {opt!r}")
