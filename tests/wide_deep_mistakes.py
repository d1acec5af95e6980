"""A user's own wide & deep variant with the mistake Keras users make with two outputs: the
loss weights applied to the wrong output. Run through `--variant module:Class`, the suite's
parity check must catch it."""

from __future__ import annotations

from dataclasses import replace

from variants.wide_deep.numpy_scratch import NumpyScratch


class SwappedLossWeights(NumpyScratch):
    name = "swapped_loss_weights"
    api_level = "NumPy, loss weights swapped"

    def build(self, spec, optimizer, init_weights, **kwargs):
        main, aux = spec.loss_weights
        super().build(replace(spec, loss_weights=(aux, main)), optimizer, init_weights, **kwargs)
