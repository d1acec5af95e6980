"""Variants that misbehave on purpose, run through `mlpbench run --variant tests.faulty_variants:X`
to prove the harness records each failure and finishes the rest of the suite.

They build on the NumPy reference so that they start in a fraction of a second (no TensorFlow);
each breaks in its second epoch, after the harness has seen it work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np

from harness.results import scores
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


class NaNPredictions(NumpyScratch):
    """Trains well, then predicts NaN: accuracy would read 0.1, not an error, if unchecked."""

    name = "nan_predictions"
    api_level = "test: predict returns NaN"

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), np.nan, dtype=np.float32)


class WrongShapePredictions(NumpyScratch):
    name = "wrong_shape_predictions"
    api_level = "test: predict returns (n, 3)"

    def predict(self, x: np.ndarray) -> np.ndarray:
        return super().predict(x)[:, :3]


class WrongWeights(NumpyScratch):
    name = "wrong_weights"
    api_level = "test: get_weights misses the last bias"

    def get_weights(self) -> list[np.ndarray]:
        return super().get_weights()[:-1]


class WrongGradient(NumpyScratch):
    """Learns differently: every epoch keeps a tenth of the updates it computed."""

    name = "wrong_gradient"
    api_level = "test: updates scaled by 1/10"

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        before = [w.copy() for w in self.params]
        losses = super().train_epoch(x, y, batch_size)
        for w, old in zip(self.params, before, strict=True):
            w -= (w - old) * np.float32(0.9)  # undo nine tenths of this epoch's updates
        return losses


class RoundedDifferently(NumpyScratch):
    """The same algorithm, its weights moved 1e-4 once it has taken as many steps as the
    reference must agree on (scores.PARITY_PREFIX_STEPS): about what float32 rounding
    differences grow to over a few hundred steps. Its losses part from the reference's late,
    as another framework's do on a long run, while it learns the same."""

    name = "rounded_differently"
    api_level = "test: 1e-4 perturbation of the weights after the parity prefix"

    def train_step(self, x, y):
        if self.t == scores.PARITY_PREFIX_STEPS:
            rng = np.random.default_rng(1)
            for p in self.params:
                p += (1e-4 * rng.standard_normal(p.shape)).astype(p.dtype)
        return super().train_step(x, y)


class NoneLosses(NumpyScratch):
    """Trains, but returns None where the losses should be: a broken contract, not a divergence."""

    name = "none_losses"
    api_level = "test: train_epoch returns None losses"

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> list[None]:
        losses = super().train_epoch(x, y, batch_size)
        return [None] * len(losses)


class Chatty(NumpyScratch):
    """Prints ~12 MB per epoch, then one last line: its log must stay bounded and keep the end."""

    name = "chatty"
    api_level = "test: floods stdout"

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        line = "x" * 1023
        for _ in range(12 * 1024):
            print(line)
        print("the last line of this epoch", flush=True)
        return super().train_epoch(x, y, batch_size)


# Variants that leave processes behind. Each writes the pid of what should not outlive the
# suite into the folder named by PIDS_DIR, so that a test can look for it afterwards.
PIDS_DIR = "MLPBENCH_TEST_PIDS"


def _note_pid(pid: int, what: str) -> None:
    folder = os.environ.get(PIDS_DIR)
    if folder:
        with open(os.path.join(folder, f"{what}-{pid}"), "w") as f:
            f.write(str(pid))


class SpawnsChild(NumpyScratch):
    """Starts a long `sleep` in its build and never waits for it (a server it forgot)."""

    name = "spawns_child"
    api_level = "test: leaves a child process"

    def build(self, spec, optimizer, init_weights):
        _note_pid(subprocess.Popen(["sleep", "300"]).pid, "child")
        super().build(spec, optimizer, init_weights)


class SpawnsDaemon(NumpyScratch):
    """Starts a long `sleep` in a session of its own, out of its worker's process group."""

    name = "spawns_daemon"
    api_level = "test: leaves a process in another session"

    def build(self, spec, optimizer, init_weights):
        child = subprocess.Popen(["sleep", "300"], start_new_session=True)
        _note_pid(child.pid, "daemon")
        super().build(spec, optimizer, init_weights)


class Slow(NumpyScratch):
    """Sleeps 30 s in each epoch: a worker still busy when its suite is killed."""

    name = "slow"
    api_level = "test: 30 s per epoch"

    def train_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> np.ndarray:
        _note_pid(os.getpid(), "worker")
        time.sleep(30)
        return super().train_epoch(x, y, batch_size)
