"""Variants that misbehave on purpose, run through `mlpbench run --variant tests.faulty_variants:X`
to prove the harness records each failure and finishes the rest of the suite.

They build on the NumPy reference so that they start in a fraction of a second (no TensorFlow);
each breaks in its second epoch, after the harness has seen it work.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from variants.numpy_scratch import NumpyScratch


class _BreaksLater(NumpyScratch):
    """Trains normally for one epoch, then calls `fail`."""

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls > 2:  # epoch 1 is two calls: the first batch, then the rest
            self.fail()
        return super().train_epoch(x, y, batch_size)

    def fail(self) -> None:
        raise NotImplementedError


class Crash(_BreaksLater):
    name = "crash"
    api_level = "test: raises"

    def fail(self) -> None:
        raise RuntimeError("deliberate failure in train_epoch")


class Killed(_BreaksLater):
    name = "killed"
    api_level = "test: SIGKILL"

    def fail(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does


class Segfault(_BreaksLater):
    name = "segfault"
    api_level = "test: SIGSEGV"

    def fail(self) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)


class Hang(_BreaksLater):
    name = "hang"
    api_level = "test: hangs"

    def fail(self) -> None:
        time.sleep(3600)


class Diverge(_BreaksLater):
    name = "diverge"
    api_level = "test: loss becomes NaN"

    def fail(self) -> None:
        self.params[0][...] = np.inf  # inf - inf in the logits: every later loss is NaN


class NoProtocol:
    """Has the attributes but not the methods of variants/base.py:Variant."""

    name = "no_protocol"
    api_level = "test: not a variant"

    def build(self, spec, optimizer, init_weights) -> None:
        pass
