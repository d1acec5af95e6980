"""The numbers reported for a run, computed in one place from what the worker measured, so
every variant is scored by the same code."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.measure import cores, noise, roofline

if TYPE_CHECKING:  # the worker imports this module: pandas only where frames are scored
    import pandas as pd

PARITY_TOLERANCE = 1e-5  # float32, the default
# float64 (`--dtype float64`): where rounding cannot part the trajectories over a whole run.
PARITY_TOLERANCE_FLOAT64 = 1e-9
PARITY_TOLERANCES = {"float32": PARITY_TOLERANCE, "float64": PARITY_TOLERANCE_FLOAT64}
# Steps a run must match the reference on before a parting can be called late: the loss of
# step 1 (the same weights, forward only) and of the two steps after it (the first updates). A
# different algorithm shows there (a loss weight on the wrong output at step 1 or 2, a wrong
# gradient at step 2: gaps of 1e-2 to 1e-1), float32 rounding does not: with Adam it grows
# fast, but not that fast (Fashion-MNIST 784-512-256 at batch 512: tf1_graph's fused update
# 8e-7 at step 3, past 1e-5 at step 7). Without this prefix, a mistake whose effect stays inside
# the seed band over a short run would pass.
PARITY_PREFIX_STEPS = 3


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


def step_sizes(n: int, batch_size: int) -> np.ndarray:
    """The size of every step of an epoch over n samples: full batches, then a short one."""
    sizes = np.full(math.ceil(n / batch_size), batch_size, dtype=np.int64)
    if n % batch_size:
        sizes[-1] = n % batch_size
    return sizes


def epoch_train_loss(step_losses: np.ndarray, n: int, batch_size: int) -> float:
    """Mean step loss weighted by batch size over an epoch of n samples."""
    return float(np.average(step_losses, weights=step_sizes(n, batch_size)))


WARMUP_EPOCHS = 1  # epoch 1 holds tracing and compilation: reported as first-step time


def steady(per_epoch: Sequence[Any], warmup: int = WARMUP_EPOCHS) -> list[Any]:
    """The epochs that speed is judged on: all after the warm-up, or all if there are no more."""
    return list(per_epoch[warmup:]) if len(per_epoch) > warmup else list(per_epoch)


def flagged(epochs: pd.DataFrame) -> pd.Series:
    """The windows left out of speed claims for a cause inside the process: `underused` (cores
    left idle) or `slowed` (each sample cost more CPU time), where the frame has those flags."""
    out = epochs["underused"].eq(True) if "underused" in epochs.columns else None
    if "slowed" in epochs.columns:
        slow = epochs["slowed"].eq(True)
        out = slow if out is None else out | slow
    if out is None:
        import pandas as pd  # here, not at the top: the worker imports this module

        return pd.Series(False, index=epochs.index, dtype=bool)
    return out


def steady_throughput(
    samples_per_epoch: int,
    seconds: Sequence[float],
    warmup: int = WARMUP_EPOCHS,
    underused: Sequence[bool] | None = None,
) -> float:
    """Samples per second over the steady epochs (see `steady`), leaving out those flagged in
    `underused` (one per epoch; see `underused_rows`); NaN when none is left."""
    kept = [not u for u in underused] if underused is not None else [True] * len(seconds)
    timed = [s for s, k in zip(steady(seconds, warmup), steady(kept, warmup), strict=True) if k]
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
    """max |loss - reference| over steps (and over a row's losses: the total and each output's,
    for a task with several outputs); None when the two runs do not have the same steps
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
    if over.ndim > 1:  # a step with several losses agrees when all of them do
        over = over.any(axis=1)
    return int(np.argmax(over)) if over.any() else len(a)


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


def recorded_warmup(config: Mapping[str, Any]) -> int:
    """The warm-up epochs a results folder's speed was judged without, from its manifest's
    `config`: `warmup_epochs`, or for a folder from before it was recorded, the one epoch."""
    value = config.get("warmup_epochs")
    return int(value) if value is not None else WARMUP_EPOCHS


def recorded_underused_threshold(config: Mapping[str, Any]) -> float:
    """The cores a window must have left idle to be underused, from a manifest's `config`:
    `underused_threshold`, or for a folder from before it was recorded, today's constant
    (such a folder has no own or idle CPU readings, so nothing in it is judged)."""
    value = config.get("underused_threshold")
    return float(value) if value is not None else cores.UNDERUSED_CORES


def recorded_cpus(manifest: Mapping[str, Any], epochs: pd.DataFrame) -> int:
    """The CPUs the idle readings were summed over: the manifest's `environment.cpu_count`,
    or, where it is missing, what the readings of a window add up to (busy + idle CPU seconds
    over wall seconds), never the CPUs of the machine reading the folder."""
    counted = (manifest.get("environment") or {}).get("cpu_count")
    if isinstance(counted, int) and counted > 0:
        return counted
    parts = ("own_cpu_seconds", "foreign_cpu_seconds", "idle_cpu_seconds")
    if epochs.empty or not set(parts) <= set(epochs.columns):
        return 1
    import pandas as pd

    readings = [pd.to_numeric(epochs[c], errors="coerce").to_numpy(np.float64) for c in parts]
    with np.errstate(divide="ignore", invalid="ignore"):
        total = sum(readings) / pd.to_numeric(epochs["seconds"], errors="coerce").to_numpy(float)
    total = total[np.isfinite(total)]
    return max(1, round(float(np.median(total)))) if total.size else 1


def _readings(group: pd.DataFrame, *columns: str) -> list[np.ndarray]:
    """Each column of `group` as floats, NaN where a value (or the whole column) is missing."""
    import pandas as pd  # here, not at the top: the worker imports this module

    missing = pd.Series(math.nan, group.index)
    return [
        pd.to_numeric(group.get(c, missing), errors="coerce").to_numpy(np.float64) for c in columns
    ]


def underused_rows(
    epochs: pd.DataFrame,
    cpus: int,
    threshold: float = cores.UNDERUSED_CORES,
    warmup: int = WARMUP_EPOCHS,
    noisy_threshold: float = noise.NOISY_CORES,
    band: float = cores.SLOWED_FRACTION,
) -> pd.Series:
    """For the epoch rows of one results folder, whether each is an underused window
    (harness/measure/cores.py): judged among the steady windows of its variant, every seed's;
    `band` the one a slow window falls below (the slowed threshold). Warm-up rows and rows
    without own or idle CPU readings are never flagged."""
    import pandas as pd  # here, not at the top: the worker imports this module

    flags = pd.Series(False, index=epochs.index, dtype=bool)
    if epochs.empty or not {"own_cpu_seconds", "idle_cpu_seconds"} <= set(epochs.columns):
        return flags
    rows = steady_rows(epochs, warmup)
    for _, group in rows.groupby("variant", sort=False):
        own, idle, foreign, seconds, speed = _readings(
            group,
            "own_cpu_seconds",
            "idle_cpu_seconds",
            "foreign_cpu_seconds",
            "seconds",
            "samples_per_second",
        )  # no foreign reading: not judged noisy
        flags.loc[group.index] = cores.underused(
            own, idle, foreign, seconds, cpus, threshold, noisy_threshold,
            samples=speed * seconds, band=band,
        )  # fmt: skip
    return flags


def recorded_slowed_threshold(config: Mapping[str, Any]) -> float:
    """The band a slowed window falls below (cores.slowed), from a manifest's `config`:
    `slowed_threshold`, or for a folder from before it was recorded, today's constant."""
    value = config.get("slowed_threshold")
    return float(value) if value is not None else cores.SLOWED_FRACTION


def slowed_rows(
    epochs: pd.DataFrame,
    cpus: int,
    underused: pd.Series,
    threshold: float = cores.SLOWED_FRACTION,
    warmup: int = WARMUP_EPOCHS,
    noisy_threshold: float = noise.NOISY_CORES,
) -> pd.Series:
    """For the epoch rows of one results folder, whether each is a slowed window (the same
    work at a higher CPU cost, harness/measure/cores.py), judged among the steady windows of its
    variant, every seed's; `underused` are that folder's underused flags (never also slowed).
    Warm-up rows and rows without an own CPU reading are never flagged."""
    import pandas as pd  # here, not at the top: the worker imports this module

    flags = pd.Series(False, index=epochs.index, dtype=bool)
    if epochs.empty or "own_cpu_seconds" not in epochs.columns:
        return flags
    rows = steady_rows(epochs, warmup)
    for _, group in rows.groupby("variant", sort=False):
        own, speed, foreign, seconds = _readings(
            group, "own_cpu_seconds", "samples_per_second", "foreign_cpu_seconds", "seconds"
        )
        flags.loc[group.index] = cores.slowed(
            own, speed * seconds, foreign, seconds, cpus,
            underused.loc[group.index].to_numpy(bool), threshold, noisy_threshold,
        )  # fmt: skip
    return flags


def recorded_flags(manifest: Mapping[str, Any], epochs: pd.DataFrame) -> pd.DataFrame:
    """The window flags of the epoch rows of the folder `manifest` describes, judged by the
    constants it records: columns `underused` and `slowed` (bool, one row per epoch row)."""
    import pandas as pd  # here, not at the top: the worker imports this module

    config = manifest.get("config") or {}
    underused = recorded_underused_rows(manifest, epochs)
    slowed = slowed_rows(
        epochs,
        recorded_cpus(manifest, epochs),
        underused,
        recorded_slowed_threshold(config),
        recorded_warmup(config),
        recorded_noisy_threshold(config),
    )
    return pd.DataFrame({"underused": underused, "slowed": slowed}, index=epochs.index)


def recorded_noisy_threshold(config: Mapping[str, Any]) -> float:
    """The foreign cores above which a folder's runs were called noisy (`noisy_threshold`)."""
    value = config.get("noisy_threshold")
    return float(value) if value is not None else noise.NOISY_CORES


def recorded_underused_rows(manifest: Mapping[str, Any], epochs: pd.DataFrame) -> pd.Series:
    """`underused_rows` for the epoch rows of the folder `manifest` describes, judged by the
    constants it records."""
    config = manifest.get("config") or {}
    return underused_rows(
        epochs,
        recorded_cpus(manifest, epochs),
        recorded_underused_threshold(config),
        recorded_warmup(config),
        recorded_noisy_threshold(config),
        recorded_slowed_threshold(config),
    )


def steady_rows(epochs: pd.DataFrame, warmup: int = WARMUP_EPOCHS) -> pd.DataFrame:
    """`steady` for a frame of epoch rows (one group per variant or label, and seed): the rows
    after the warm-up of each run, or all of a run's rows if it has no more."""
    if epochs.empty:
        return epochs
    run = [c for c in ("label", "variant") if c in epochs.columns][:1] + ["seed"]
    last = epochs.groupby(run)["epoch"].transform("max")
    return epochs[(epochs["epoch"] > warmup) | (last <= warmup)]


def summarize(
    manifest: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    steps: pd.DataFrame,
    epochs: pd.DataFrame,
    sources: Mapping[str, Mapping[str, Any] | None],
) -> pd.DataFrame:
    """summary.csv: one row per run, scored from its step and epoch rows with the constants
    the manifest records (reference, parity tolerance, warm-up, noise and underuse thresholds,
    target, CPU count, the calibration's GEMM peak, bandwidth and step byte model).
    `runs` are the manifest's run records; `sources` a variant's `api_level`, `loc`, `sha256`."""
    import pandas as pd  # here, not at the top: the worker imports this module

    from harness.results import storage
    from harness.results.storage import SUMMARY_COLUMNS

    config = manifest.get("config") or {}
    tasks = manifest.get("tasks") or {}
    warmup = recorded_warmup(config)
    tolerance = recorded_tolerance(config)
    # 0 for a folder from before the prefix was required: it is judged as it was
    prefix = int(config.get("parity_prefix_steps") or 0)
    reference_name = config.get("reference") if config.get("parity") else None
    # the total loss, and each output's for a task with several: parity holds for all of them
    loss_columns = ["loss"] + [c for c in storage.output_loss_columns(manifest) if c in steps]
    column = loss_columns[0] if len(loss_columns) == 1 else loss_columns  # (steps,) for one
    by_run_steps = {
        k: g[column].to_numpy(np.float64) for k, g in steps.groupby(["variant", "seed"])
    }
    epochs = epochs.join(recorded_flags(manifest, epochs))
    by_run_epochs = {k: g.sort_values("epoch") for k, g in epochs.groupby(["variant", "seed"])}

    def losses(key: tuple[str, int]) -> np.ndarray:
        return by_run_steps.get(key, np.empty(0))

    def curve(key: tuple[str, int]) -> np.ndarray:
        frame = by_run_epochs.get(key)
        return np.empty(0) if frame is None else frame["train_loss"].to_numpy(np.float64)

    ok = {(r["variant"], int(r["seed"])) for r in runs if r.get("status") == "ok"}
    reference = {s: losses((v, s)) for v, s in ok if v == reference_name}
    curves = {seed: curve((reference_name, seed)) for seed in reference}
    calibration = manifest.get("calibration") or {}
    peak = calibration.get("peak_gflops")
    # the floor of a whole step: the byte model and bandwidth the calibration stored with it
    bandwidth, step_bytes = calibration.get("bandwidth_gbs"), calibration.get("step_bytes")
    measured = manifest.get("overhead_by_variant") or {}
    rows = []
    for r in runs:
        key = (r["variant"], int(r["seed"]))
        source = sources.get(r["variant"]) or {}
        task = tasks.get(str(key[1])) or {}
        row: dict[str, Any] = {
            "variant": key[0],
            "seed": key[1],
            "status": r.get("status"),
            "error": r.get("error"),
            "api_level": r.get("api_level") or source.get("api_level"),
            "device": r.get("device"),
            "first_step_seconds": r.get("first_step_seconds"),
            "peak_rss_mb": r.get("peak_rss_mb"),
            "params": r.get("params"),
            "loc": source.get("loc"),
            "source_sha256": source.get("sha256"),
            "level": r.get("level"),
            "rung": r.get("rung"),
            "jit_compile": r.get("jit_compile"),
            "steps_per_execution": r.get("steps_per_execution"),
            "contended": int(config.get("jobs") or 1) > 1,
            "attempts": r.get("attempts"),
        }
        frame = by_run_epochs.get(key)
        if key in ok and frame is not None and len(frame):
            acc, sec = frame["test_accuracy"].tolist(), frame["seconds"].tolist()
            to_target = time_to_target(acc, sec, float(config.get("target_accuracy") or 1.0))
            row.update(
                test_accuracy=acc[-1],
                test_loss=float(frame["test_loss"].iloc[-1]),
                samples_per_second=steady_throughput(
                    task.get("n_train", math.nan), sec, warmup, flagged(frame).tolist()
                ),
                epochs_to_target=to_target[0],
                seconds_to_target=to_target[1],
            )
            foreign = [None if pd.isna(f) else float(f) for f in frame["foreign_cpu_seconds"]]
            load = noise.assess(
                steady(foreign, warmup),
                steady(sec, warmup),
                threshold=recorded_noisy_threshold(config),
            )
            if load is not None:
                row.update(
                    foreign_cpu=load.cores, foreign_cpu_se=load.standard_error, noisy=load.noisy
                )
            own = pd.to_numeric(frame["own_cpu_seconds"], errors="coerce").tolist()
            used = [cores.cores_used(o, t) for o, t in zip(own, sec, strict=True)]
            used = [u for u in steady(used, warmup) if math.isfinite(u)]
            if used:  # a folder from before own CPU was recorded has no reading to judge
                row.update(
                    underused_windows=int(sum(steady(frame["underused"].tolist(), warmup))),
                    slowed_windows=int(sum(steady(frame["slowed"].tolist(), warmup))),
                    cores_used=float(np.median(used)),
                )
        if key[1] in reference and key in ok:
            gap = max_abs_diff(losses(key), reference[key[1]])
            if gap is not None:
                band_gap = seed_band_gap(curve(key), curves[key[1]], list(curves.values()))
                within = steps_within(losses(key), reference[key[1]], tolerance)
                late = within is not None and within >= min(prefix, len(losses(key)))
                row.update(
                    parity_max_abs_diff=gap,
                    parity_pass=gap < tolerance,
                    parity_steps_within=within,
                    seed_band_gap=band_gap,
                    # exact, or parted late and no further from the reference than another
                    # seed would be
                    learning_pass=gap < tolerance
                    or (late and band_gap is not None and band_gap <= 1.0),
                )
        row["harness_overhead"] = (measured.get(key[0]) or {}).get("ratio_median")
        row["flops_per_sample"] = flops = task.get("flops_per_sample")
        speed = row.get("samples_per_second")
        if peak and speed and flops:
            row["gemm_fraction"] = roofline.gemm_fraction(speed, flops, peak)
            if bandwidth and step_bytes and task.get("n_train"):
                row["floor_fraction"] = roofline.floor_fraction(
                    speed, task["n_train"], flops, peak, step_bytes, bandwidth
                )
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)


def throughput_half_widths(
    epochs: pd.DataFrame, summary: pd.DataFrame, manifest: Mapping[str, Any]
) -> dict[str, float]:
    """Each variant's throughput interval (stats.relative_half_width: +-0.05 is +-5 %) from its
    ok runs that outside load left undisturbed: a process (seed) per run, its steady windows
    less those flagged underused as sub-samples. A variant with ok runs but no such window has
    an unknown interval (inf); one without an ok run is left out (more would not help)."""
    import pandas as pd  # here, not at the top: the worker imports this module

    from harness.measure import stats  # SciPy: a second to import, which a worker must not pay

    if epochs.empty:
        return {}
    quiet = summary[summary["status"].eq("ok") & ~summary["noisy"].eq(True)]
    keys = set(zip(quiet["variant"], quiet["seed"].astype(int), strict=True))
    rows = epochs.join(recorded_flags(manifest, epochs))
    rows = steady_rows(rows, recorded_warmup(manifest.get("config") or {}))
    rows = rows[~flagged(rows)]
    nested: dict[str, dict[int, list[float]]] = {}
    for (variant, seed), g in rows.groupby(["variant", "seed"]):
        if (variant, int(seed)) in keys:
            values = pd.to_numeric(g["samples_per_second"], errors="coerce").dropna().tolist()
            nested.setdefault(variant, {})[int(seed)] = values
    widths = dict.fromkeys(summary.loc[summary["status"].eq("ok"), "variant"], math.inf)
    widths.update({v: stats.relative_half_width(by_seed) for v, by_seed in nested.items()})
    return widths
