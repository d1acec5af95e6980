"""What the Keras `fit` variants of wide & deep share: compile with a loss per output, fit with
the loss of every step, and the weights in the contract's order.

They differ only in how the model is built, which each variant's `make_model` does. A model
takes the pair (wide, deep) and returns the dict {"main": logits, "aux": logits}; its dense
layers are named "hidden_1", ..., "main" and "aux"."""

from __future__ import annotations

from abc import ABC, abstractmethod

import keras
import numpy as np

from variants.base import CONTROLLED, AsWritten, Optimizer, WideDeepSpec
from variants.keras_optimizers import keras_optimizer

OUTPUTS = ("main", "aux")  # WideDeepSpec.outputs: the order of loss_weights and of the losses


def hidden_names(spec: WideDeepSpec) -> list[str]:
    return [f"hidden_{i}" for i in range(1, len(spec.hidden) + 1)]


class BatchLoss(keras.metrics.Metric):
    """The loss of the current batch only: `logs["main_loss"]` is the running mean of the epoch.

    Given per output in `compile`, it sees that output's logits and the labels, as the loss
    does, and is logged as "main_batch_loss", "aux_batch_loss"."""

    def __init__(self, name="batch_loss"):
        super().__init__(name=name)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.value = self.add_variable(shape=(), initializer="zeros", name="value")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.value.assign(self.loss_fn(y_true, y_pred))

    def result(self):
        return self.value


class KerasFit(ABC):
    """A wide & deep Keras model trained with `model.fit`; subclasses say how it is built."""

    jit_compile = False  # "auto" turns XLA on when a GPU is visible: XLA is a variant of its own
    steps_per_execution = 1

    @abstractmethod
    def make_model(self, spec: WideDeepSpec) -> keras.Model: ...

    def loss_metrics(self) -> dict[str, list[keras.metrics.Metric]]:
        return {output: [BatchLoss()] for output in OUTPUTS}

    def build(
        self,
        spec: WideDeepSpec,
        optimizer: Optimizer,
        init_weights: list[np.ndarray] | None,
        *,
        as_written: AsWritten = CONTROLLED,
    ) -> None:
        keras.config.set_floatx(spec.dtype)  # losses, metrics, the optimizer's learning rate
        keras.config.set_dtype_policy(spec.dtype)  # layers (fixed once the first is made)
        if as_written.seed is not None:  # as written: Python's, NumPy's and TF's RNG at once
            keras.utils.set_random_seed(as_written.seed)
        self.spec, self.shuffle = spec, as_written.shuffle
        self.model = self.make_model(spec)  # Keras' own initializers: Glorot kernels, zero biases
        # By name, not `model.set_weights`: Keras orders a model's weights by its graph, and
        # sorts dict outputs by name (aux before main); the contract puts main first.
        self.layers = [self.model.get_layer(n) for n in [*hidden_names(spec), *OUTPUTS]]
        if init_weights is not None:
            kernels, biases = init_weights[::2], init_weights[1::2]
            for layer, kernel, bias in zip(self.layers, kernels, biases, strict=True):
                layer.set_weights([kernel, bias])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.model.compile(
            optimizer=keras_optimizer(optimizer, as_written.optimizer_defaults),
            loss={output: loss for output in OUTPUTS},
            # by name: a list would follow Keras' order of the outputs, which puts aux first
            loss_weights=dict(zip(OUTPUTS, spec.loss_weights, strict=True)),
            metrics=self.loss_metrics(),
            jit_compile=self.jit_compile,
            steps_per_execution=self.steps_per_execution,
        )

    def total(self, main, aux):
        """The loss Keras differentiates: each output's loss times its weight, summed; the
        model adds no loss of its own (no regularizer), which `model.losses` would hold."""
        w_main, w_aux = self.spec.loss_weights
        return w_main * main + w_aux * aux

    def fit(self, x: tuple, y: np.ndarray, batch_size: int, callbacks=()) -> None:
        self.model.fit(
            x,  # the pair (wide, deep), in the order of the model's inputs
            {output: y for output in OUTPUTS},  # both heads learn the same labels
            batch_size=batch_size,
            epochs=1,
            shuffle=self.shuffle,
            verbose=0,
            callbacks=list(callbacks),
        )

    def train_epoch(self, x: tuple, y: np.ndarray, batch_size: int) -> np.ndarray:
        losses = {output: [] for output in OUTPUTS}

        def keep(batch, logs):
            for output in OUTPUTS:
                losses[output].append(logs[f"{output}_batch_loss"])

        self.fit(x, y, batch_size, [keras.callbacks.LambdaCallback(on_train_batch_end=keep)])
        # in the model's dtype, so that the total is rounded as Keras rounds it
        main, aux = (np.array(losses[output], self.spec.dtype) for output in OUTPUTS)
        return np.stack([self.total(main, aux), main, aux], axis=1)

    def predict(self, x: tuple) -> np.ndarray:
        # One forward call, as the `predict` docstring advises when the input fits in one batch.
        return keras.ops.convert_to_numpy(self.model(x)["main"])

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]
