"""The numbers reported for a run, computed in one place from what the worker measured, so
every variant is scored by the same code."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PARITY_TOLERANCE = 1e-5  # float32, the default
# float64 (`--dtype float64`): where rounding cannot part the trajectories over a whole run.
PARITY_TOLERANCE_FLOAT64 = 1e-9
PARITY_TOLERANCES = {"float32": PARITY_TOLERANCE, "float64": PARITY_TOLERANCE_FLOAT64}


def parity_tolerance(dtype: str = "float32") -> float:
    """The largest |loss - reference| at any step that still counts as the same computation,
    for runs trained in `dtype`."""
    return PARITY_TOLERANCES[dtype]


def recorded_tolerance(config: Mapping[str, Any]) -> float:
    """The tolerance a results folder's parity was judged by, from its manifest's `config`:
    `parity_tolerance`, or for a folder from before it was recorded, its dtype's (float32)."""
    value = config.get("parity_tolerance")
    return float(value) if value is not None else parity_tolerance(config.get("dtype", "float32"))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)  # shift for stability; the result is unchanged
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy of integer `labels` under `logits` (n, classes)."""
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(labels)), labels].mean())


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(axis=1) == labels).mean())


def batch_sizes(n: int, batch_size: int) -> np.ndarray:
    """The size of every step of an epoch over n samples: full batches, then a short one."""
    sizes = np.full(math.ceil(n / batch_size), batch_size, dtype=np.int64)
    if n % batch_size:
        sizes[-1] = n % batch_size
    return sizes


def epoch_train_loss(step_losses: np.ndarray, n: int, batch_size: int) -> float:
    """Mean step loss weighted by batch size over an epoch of n samples."""
    return float(np.average(step_losses, weights=batch_sizes(n, batch_size)))


WARMUP_EPOCHS = 1  # epoch 1 holds tracing and compilation: reported as first-step time


def steady(per_epoch: Sequence[Any]) -> list[Any]:
    """The epochs that speed is judged on: all after the warm-up, or all if there are no more."""
    return list(per_epoch[WARMUP_EPOCHS:]) if len(per_epoch) > WARMUP_EPOCHS else list(per_epoch)


def steady_throughput(samples_per_epoch: int, seconds: Sequence[float]) -> float:
    """Samples per second over the steady epochs (see `steady`)."""
    timed = steady(seconds)
    total = float(sum(timed))
    return samples_per_epoch * len(timed) / total if total > 0 else math.nan


def time_to_target(
    accuracies: Sequence[float], seconds: Sequence[float], target: float
) -> tuple[int | None, float | None]:
    """The first epoch (1-based) whose test accuracy reaches `target`, and the training
    seconds spent up to the end of it; (None, None) if never reached."""
    elapsed = 0.0
    for epoch, (acc, sec) in enumerate(zip(accuracies, seconds, strict=True), start=1):
        elapsed += sec
        if acc >= target:
            return epoch, elapsed
    return None, None


def max_abs_diff(losses: np.ndarray, reference: np.ndarray) -> float | None:
    """max |loss - reference| over steps; None when the two runs do not have the same steps
    (one of them stopped early), because a partial comparison would look better than it is."""
    a, b = np.asarray(losses, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        return None
    diff = np.abs(a - b)
    return float("inf") if not np.all(np.isfinite(diff)) else float(diff.max())


def steps_within(losses: np.ndarray, reference: np.ndarray, tolerance: float) -> int | None:
    """How many leading steps agree with the reference within `tolerance`: all of them when
    parity holds. On long runs float32 rounding differences grow until the trajectories part
    (two TensorFlow variants part from each other too), so where they part tells an early
    difference in the algorithm from late amplified rounding. None as for `max_abs_diff`."""
    a, b = np.asarray(losses, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        return None
    over = ~(np.abs(a - b) < tolerance)  # a NaN counts as over
    return int(np.argmax(over)) if over.any() else int(a.size)


def seed_band_gap(
    curve: Sequence[float], reference: Sequence[float], reference_seeds: Sequence[Sequence[float]]
) -> float | None:
    """How far a run's per-epoch training loss strays from the reference run of its own seed,
    in units of the seed band: at each epoch, the range the reference's runs of different
    seeds span. Above 1 at some epoch, the variant differs from the reference by more than
    changing the seed does: a real difference. At most 1, a late parting of float32
    trajectories (amplified rounding) is all there is. None with fewer than 2 reference seeds
    or curves of different lengths."""
    runs = [np.asarray(c, dtype=np.float64) for c in reference_seeds]
    v, r = np.asarray(curve, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(runs) < 2 or any(c.shape != r.shape for c in runs) or v.shape != r.shape or not v.size:
        return None
    band = np.ptp(np.stack(runs), axis=0)  # (epochs,)
    gap = np.abs(v - r)
    if not np.all(np.isfinite(gap)):
        return float("inf")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(band > 0, gap / band, np.where(gap > 0, np.inf, 0.0))
    return float(ratio.max())
