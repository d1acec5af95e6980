"""The harness' overhead: a variant's throughput as the harness times it, against the same
variant's training loop timed bare, in the same process.

bare     the epochs' data ordered in advance; `variant.train_epoch` in a tight loop under one
         timer; throughput = samples / wall seconds of the loop.
harness  epoch by epoch as the worker drives it: the epoch's data taken from the task, only
         `train_epoch` inside the timed window, the evaluation after it; throughput = samples /
         the sum of the seconds the harness records.

The two alternate in blocks (bare, harness, harness, bare, ...) on one built variant, so that
both see the same machine load and the same model state; each pair of adjacent blocks gives one
ratio harness/bare, and the report is the median ratio with its spread over all pairs. A ratio
of 1.0 means the harness reports exactly the bare speed; the target is within 2 %.

    python -m harness.overhead --variant numpy_scratch --variant tf2_function
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import variants
from harness.task import Task, make_task
from variants.base import Adam, Variant

# Runs epoch `epoch` of `task` on `variant` the way the worker does and returns the training
# seconds it records for that epoch.
EpochDriver = Callable[[Variant, Task, int, int], float]

DEFAULT_VARIANTS = ("numpy_scratch", "tf2_function")


def worker_style_epoch(variant: Variant, task: Task, epoch: int, batch_size: int) -> float:
    """One epoch as the worker runs it: the data fetched in this epoch's order outside the
    timed window, only training inside it, the evaluation on the test set after it."""
    x, y = task.epoch_data(epoch)
    t0 = time.perf_counter()
    losses = variant.train_epoch(x, y, batch_size)
    seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(np.asarray(losses))):
        raise FloatingPointError(f"epoch {epoch}: a training loss is not finite")
    evaluate(variant, task)
    return seconds


def evaluate(variant: Variant, task: Task) -> tuple[float, float]:
    """Test loss (mean softmax cross-entropy) and accuracy."""
    logits = np.asarray(variant.predict(task.x_test), dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(task.y_test)), task.y_test].mean()
    return float(loss), float((logits.argmax(axis=1) == task.y_test).mean())


def _bare_block(variant: Variant, data: list[tuple[np.ndarray, np.ndarray]], batch: int) -> float:
    t0 = time.perf_counter()
    for x, y in data:
        variant.train_epoch(x, y, batch)
    return time.perf_counter() - t0


def _harness_block(
    variant: Variant, task: Task, epochs: range, batch: int, driver: EpochDriver
) -> float:
    return sum(driver(variant, task, epoch, batch) for epoch in epochs)


def _spread(values: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return {"min": min(values), "q1": q1, "q3": q3, "max": max(values)}


def measure(
    variant_name: str,
    task: Task,
    batch_size: int,
    epochs_per_block: int,
    rounds: int,
    driver: EpochDriver = worker_style_epoch,
    warmup_epochs: int = 2,
) -> dict[str, Any]:
    """Harness/bare throughput ratio of one variant; every per-block sample is kept.

    `task` must hold at least `epochs_per_block` epoch orders; every block trains those same
    epochs, so bare and harness blocks see identical data. The variant keeps training across
    blocks (only its speed is measured, and a step's cost does not depend on the weights).
    """
    if task.epoch_orders.shape[0] < epochs_per_block:
        raise ValueError(f"task has {task.epoch_orders.shape[0]} epochs, need {epochs_per_block}")
    variant = variants.load(variant_name)()
    variant.build(task.spec, Adam(), task.init_weights)
    epochs = range(epochs_per_block)
    data = [task.epoch_data(e) for e in epochs]  # bare: ordered before any timing
    samples_per_block = sum(len(x) for x, _ in data)

    # Warm-up through both paths: tracing (the last, short batch is a shape of its own),
    # prediction, thread pools.
    for e in range(warmup_epochs):
        driver(variant, task, e % epochs_per_block, batch_size)
        variant.train_epoch(*data[e % epochs_per_block], batch_size)

    bare_sps: list[float] = []
    harness_sps: list[float] = []
    for r in range(rounds):
        # ABBA: the order flips every round so that a drift in load favours neither.
        pair = {}
        for kind in ("bare", "harness") if r % 2 == 0 else ("harness", "bare"):
            if kind == "bare":
                pair[kind] = _bare_block(variant, data, batch_size)
            else:
                pair[kind] = _harness_block(variant, task, epochs, batch_size, driver)
        bare_sps.append(samples_per_block / pair["bare"])
        harness_sps.append(samples_per_block / pair["harness"])

    ratios = [h / b for h, b in zip(harness_sps, bare_sps, strict=True)]
    median_ratio = statistics.median(ratios)
    return {
        "variant": variant_name,
        "ratio_median": median_ratio,
        "ratio_spread": _spread(ratios),
        # The fastest block of each kind is the least disturbed by other load: a second
        # estimate that a busy machine moves less than the median.
        "ratio_best": max(harness_sps) / max(bare_sps),
        "within_2_percent": abs(median_ratio - 1.0) <= 0.02,
        "ratios": ratios,
        "bare_samples_per_second": bare_sps,
        "harness_samples_per_second": harness_sps,
        "bare_samples_per_second_median": statistics.median(bare_sps),
        "harness_samples_per_second_median": statistics.median(harness_sps),
        "samples_per_block": samples_per_block,
        "epochs_per_block": epochs_per_block,
        "rounds": rounds,
        "batch_size": batch_size,
        "layer_sizes": list(task.spec.layer_sizes),
        "driver": f"{driver.__module__}:{driver.__qualname__}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m harness.overhead",
        description="Harness vs bare-loop throughput of a variant; prints JSON on stdout.",
    )
    parser.add_argument(
        "--variant", action="append", help=f"repeatable; default {', '.join(DEFAULT_VARIANTS)}"
    )
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--hidden", default="512,256", help="comma-separated widths")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs-per-block", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # stdout carries only JSON

    from harness.datasets import load

    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    task = make_task(load(args.dataset, args.data_dir), hidden, args.epochs_per_block, args.seed)
    results = {
        name: measure(name, task, args.batch_size, args.epochs_per_block, args.rounds)
        for name in args.variant or DEFAULT_VARIANTS
    }
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
