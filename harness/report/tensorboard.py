"""`mlpbench export-tensorboard`: every run's curves as TensorBoard event files.

One TensorBoard run per (variant, seed) at DIR/<variant>/seed<N>, so `tensorboard --logdir
DIR` overlays the variants the way a TensorFlow user is used to. Written with tensorboard's
own framework-free writer (imported lazily), without importing TensorFlow.

Tags: `step/loss` (x = global step); `epoch/train_loss`, `epoch/test_loss`,
`epoch/test_accuracy`, `epoch/samples_per_second`, `epoch/seconds` (x = epoch). Wall times
are the run's start plus its accumulated training seconds, so TensorBoard's "relative"
axis shows training time (steps are spread evenly over their epoch: the results keep only
per-epoch timings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd

from harness.results.reader import ResultSet, read_results

NOTF = "tensorboard.compat.notf"
EVENTS = "events.out.tfevents.*"  # the writer's file names
STEP_TAG = "step/loss"
EPOCH_TAGS = {
    "train_loss": "epoch/train_loss",
    "test_loss": "epoch/test_loss",
    "test_accuracy": "epoch/test_accuracy",
    "samples_per_second": "epoch/samples_per_second",
    "seconds": "epoch/seconds",
}


def run_dir(root: Path, variant: str, seed: int) -> Path:
    """DIR/<variant>/seed<N>; a user's `pkg.mod:Class` (or anything not filename-safe) gets
    a safe name plus a short hash, so two different variants never share a folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", variant).strip("._") or "variant"
    if safe != variant:
        safe = f"{safe[:60]}-{hashlib.sha256(variant.encode()).hexdigest()[:8]}"
    return root / safe / f"seed{seed}"


def export(results: Path, out: Path) -> list[Path]:
    """Write the event files of every run that has curves; returns the run folders."""
    return export_set(read_results(results), Path(out))


def _writer() -> type:
    if "tensorflow" not in sys.modules:
        # To write files, tensorboard would import all of TensorFlow when installed (seconds,
        # and its C++ start-up log); its `notf` switch selects its own file-only stub instead.
        sys.modules.setdefault(NOTF, types.ModuleType(NOTF))
    from tensorboard.summary import Writer

    return Writer


def export_set(rs: ResultSet, out: Path) -> list[Path]:
    Writer = _writer()

    starts = {
        (str(r.get("variant")), r.get("seed")): _timestamp(r.get("started"))
        for r in rs.manifest.get("runs") or []
    }
    default_start = _timestamp(rs.manifest.get("created"))
    runs = pd.concat([rs.steps[["variant", "seed"]], rs.epochs[["variant", "seed"]]])
    written = []
    for (variant, seed), _ in runs.dropna().groupby(["variant", "seed"], sort=False):
        seed = int(seed)
        start = starts.get((variant, seed), default_start)
        epochs = rs.epochs[(rs.epochs["variant"] == variant) & (rs.epochs["seed"] == seed)]
        epochs = epochs.sort_values("epoch")
        steps = rs.steps[(rs.steps["variant"] == variant) & (rs.steps["seed"] == seed)]
        steps = steps.sort_values("step")
        path = run_dir(out, variant, seed)
        path.mkdir(parents=True, exist_ok=True)
        # An export into the same folder replaces the run's curves: TensorBoard reads every
        # event file of a run, and would draw each curve once per export.
        for earlier in path.glob(EVENTS):
            earlier.unlink()
        writer = Writer(str(path))
        try:
            end_of_epoch = dict(
                zip(epochs["epoch"], start + _finite(epochs["seconds"]).cumsum(), strict=True)
            )
            for epoch, group in steps.groupby("epoch", sort=True):
                begin = end_of_epoch.get(epoch - 1, start)
                end = end_of_epoch.get(epoch, begin)
                times = np.linspace(begin, end, len(group) + 1)[1:]
                for step, loss, t in zip(group["step"], group["loss"], times, strict=True):
                    writer.add_scalar(STEP_TAG, float(loss), int(step), wall_time=float(t))
            for row in epochs.itertuples(index=False):
                t = float(end_of_epoch.get(row.epoch, start))
                for column, tag in EPOCH_TAGS.items():
                    value = getattr(row, column)
                    if pd.notna(value):
                        writer.add_scalar(tag, float(value), int(row.epoch), wall_time=t)
        finally:
            writer.close()
        written.append(path)
    return written


def _timestamp(iso: object) -> float:
    """Seconds since the epoch from the manifest's ISO-8601 UTC text; 0 when absent."""
    if not isinstance(iso, str) or not iso:
        return 0.0
    try:
        stamp = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def _finite(seconds: pd.Series) -> pd.Series:
    """Epoch times for wall times: a missing or non-finite one counts as 0 s."""
    values = seconds.astype(float)
    return values.where(np.isfinite(values), 0.0)
