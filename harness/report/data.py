"""The tables a report is drawn from: one or more result sets combined under unique variant
labels, plus the derived samples (throughput windows, parity differences, per-variant rows)
that the figures, the verdict and the page share; for a batch-size sweep, the throughput and
roofline of every variant at every batch size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.measure import anatomy, cores, roofline, stats
from harness.results import reader, scores
from harness.results.reader import ResultSet
from harness.results.sweep import SweepFolder


@dataclass(frozen=True)
class ReportData:
    """Combined tables; every frame has a `label` (unique across sets) and a `set` column."""

    sets: tuple[ResultSet, ...]
    labels: tuple[str, ...]  # variant labels in order of first appearance
    summary: pd.DataFrame
    epochs: pd.DataFrame
    steps: pd.DataFrame

    @property
    def ok(self) -> pd.DataFrame:
        return self.summary[self.summary["status"] == "ok"]

    def ok_runs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of `frame` that belong to runs with status ok (figures draw finished runs)."""
        keys = self.ok[["label", "seed"]].drop_duplicates()
        return frame.merge(keys, on=["label", "seed"], how="inner")

    def plotted_labels(self) -> list[str]:
        """Labels with at least one ok run, in report order."""
        ok = set(self.ok["label"])
        return [lab for lab in self.labels if lab in ok]

    @property
    def reference(self) -> str:
        """The parity reference, as the (first) manifest stores it: never today's code."""
        return self.sets[0].reference if self.sets else reader.REFERENCE_BEFORE_STORED

    @property
    def parity_tolerance(self) -> float:
        """The loosest tolerance the sets' parity was judged by (their manifests')."""
        return max((s.parity_tolerance for s in self.sets), default=scores.PARITY_TOLERANCE)

    @property
    def warmup_epochs(self) -> int:
        """The longest warm-up the sets' manifests record: no set is judged on its warm-up."""
        return max((s.warmup_epochs for s in self.sets), default=scores.WARMUP_EPOCHS)

    def target_accuracy(self) -> float | None:
        targets = {s.config.get("target_accuracy") for s in self.sets} - {None}
        return float(targets.pop()) if len(targets) == 1 else None


def combine(sets: Sequence[ResultSet]) -> ReportData:
    """Combine result sets; a variant present in more than one set is labeled by set name
    everywhere ("tf2_function @ A"), so each label names exactly one (set, variant)."""
    names = _unique_set_names(sets)
    counts: dict[str, int] = {}
    for s in sets:
        for v in s.summary["variant"].unique():
            counts[v] = counts.get(v, 0) + 1

    def label(variant: str, set_name: str) -> str:
        return f"{variant} @ {set_name}" if counts.get(variant, 0) > 1 else variant

    frames: dict[str, list[pd.DataFrame]] = {"summary": [], "epochs": [], "steps": []}
    labels: list[str] = []
    for s, set_name in zip(sets, names, strict=True):
        for key in frames:
            df = getattr(s, key).copy()
            # Explicit str dtype: an empty CSV (a suite that just started) must still merge.
            df.insert(0, "set", pd.Series(set_name, index=df.index, dtype=str))
            run_labels = [label(v, set_name) for v in df["variant"]]
            df.insert(0, "label", pd.Series(run_labels, index=df.index, dtype=str))
            blocks = [_task_block(s, seed) for seed in df["seed"]]
            df["block"] = pd.Series(blocks, index=df.index, dtype=str)
            if key == "epochs":  # judged within its own folder, by the constants it records
                flags = scores.recorded_flags(s.manifest, df)
                df["underused"], df["slowed"] = flags["underused"], flags["slowed"]
            frames[key].append(df)
        for v in s.summary["variant"]:
            if label(v, set_name) not in labels:
                labels.append(label(v, set_name))
    return ReportData(
        sets=tuple(sets),
        labels=tuple(labels),
        **{k: pd.concat(v, ignore_index=True) for k, v in frames.items()},
    )


def _unique_set_names(sets: Sequence[ResultSet]) -> list[str]:
    names: list[str] = []
    for s in sets:
        name, i = s.name, 2
        while name in names:
            name, i = f"{s.name}#{i}", i + 1
        names.append(name)
    return names


def _task_block(s: ResultSet, seed: object) -> str:
    """The pairing key of a seed: its task fingerprint (the data, weights and batch orders
    every variant of that seed received), so seeds pair across sets only if truly equal."""
    if pd.isna(seed):
        return ""
    task = (s.manifest.get("tasks") or {}).get(str(seed)) or {}
    return str(task.get("fingerprint") or f"{s.name}/seed{seed}")


def throughput_samples(epochs: pd.DataFrame, warmup: int = scores.WARMUP_EPOCHS) -> pd.DataFrame:
    """The per-epoch throughput windows that make up the steady state (results/README.md):
    the epochs after the manifest's warm-up (epochs 2..N), or all of a run's epochs when it has
    no more, less the windows flagged underused (the worker left cores idle that it used in
    others: a slow mode, not the variant's speed) or slowed (each sample cost more CPU time:
    the CPU ran slower). These are the timing repeats the spreads and tests are computed from."""
    timed = _timed_windows(epochs, warmup)
    return timed[~scores.flagged(timed)] if len(timed) else timed


def _timed_windows(epochs: pd.DataFrame, warmup: int) -> pd.DataFrame:
    steady = scores.steady_rows(epochs, warmup)
    return steady[np.isfinite(steady["samples_per_second"])] if len(steady) else steady


def _underused(epochs: pd.DataFrame) -> pd.Series:
    if "underused" not in epochs.columns:
        return pd.Series(False, index=epochs.index)
    return epochs["underused"].eq(True)


def throughput_by_process(data: ReportData) -> dict[str, dict[object, np.ndarray]]:
    """Throughput windows per label and process (seed): the epoch windows of ok runs that
    outside load did not disturb (`noisy` in summary.csv), less the windows flagged underused
    or slowed; a run without epoch rows contributes its summary's steady-state value as its one
    window, so no variant is left out (a run whose every window was flagged contributes nothing).
    A process is the unit of replication of speed, its windows are sub-samples
    (harness/measure/stats.py)."""
    quiet = data.ok[~data.ok["noisy"].eq(True)]
    keys = quiet[["label", "seed"]].drop_duplicates()
    epochs = data.epochs.merge(keys, on=["label", "seed"], how="inner")
    timed = _timed_windows(epochs, data.warmup_epochs)
    windows = throughput_samples(epochs, data.warmup_epochs)
    out: dict[str, dict[object, np.ndarray]] = {}
    for lab in data.labels:
        ok = quiet[quiet["label"] == lab]
        w = windows[windows["label"] == lab]
        measured = set(timed[timed["label"] == lab]["seed"])
        processes: dict[object, np.ndarray] = {}
        for seed in ok["seed"].drop_duplicates():
            if seed in measured:
                values = w.loc[w["seed"] == seed, "samples_per_second"]
            else:
                values = ok.loc[ok["seed"] == seed, "samples_per_second"]
            values = stats.clean(values.to_numpy(float))
            if values.size:
                processes[seed] = values
        if processes:
            out[lab] = processes
    return out


def throughput_by_label(data: ReportData) -> dict[str, np.ndarray]:
    """Every throughput window of a label, its processes pooled (`throughput_by_process`):
    for spreads and figures; speed claims compare processes, not pooled windows."""
    return {lab: np.concatenate(list(p.values())) for lab, p in throughput_by_process(data).items()}


@dataclass(frozen=True)
class Resolution:
    """The suite's A/A control: the largest relative difference between the median
    throughputs of variants known to compute the same thing (the manifest's `aa_groups`).
    A speed difference within it is not resolved. NaN when no group ran with two variants
    (or the folder predates `aa_groups`): then the interval alone decides."""

    value: float
    groups: tuple[tuple[str, ...], ...]  # the labels compared, per group
    processes: tuple[int, ...]  # processes behind each compared label

    @property
    def measured(self) -> bool:
        return math.isfinite(self.value)

    def describe(self) -> str:
        """'4.2 % (keras_sequential vs keras_functional vs keras_subclass, 3 processes each)'
        or 'not measured (...)'."""
        if not self.measured:
            return (
                "not measured (no variants known to compute the same thing ran together, "
                "so a difference is judged by its interval alone)"
            )
        low, high = min(self.processes), max(self.processes)
        each = f"{low}" if low == high else f"{low}-{high}"
        groups = "; ".join(" vs ".join(g) for g in self.groups)
        return f"{self.value * 100:.1f} % ({groups}, {each} processes each)"


def resolution(data: ReportData) -> Resolution:
    """The A/A resolution of the report: per set, the largest difference within any of the
    groups its manifest records (`config.aa_groups`, compared under the set's labels); over
    several sets, the largest: a combined report cannot resolve what one of its sets cannot."""
    tput = throughput_by_process(data)
    worst, groups, processes = math.nan, [], []
    for s, set_name in zip(data.sets, _unique_set_names(data.sets), strict=True):
        recorded = s.config.get("aa_groups") or []
        in_set = data.summary[data.summary["set"] == set_name]
        label_of = dict(zip(in_set["variant"], in_set["label"], strict=False))
        for group in recorded if isinstance(recorded, list) else []:
            if not isinstance(group, list):
                continue
            names = [v for v in group if isinstance(v, str)]  # a damaged manifest's, skipped
            labels = [label_of[v] for v in names if v in label_of and label_of[v] in tput]
            value = stats.aa_resolution({lab: tput[lab] for lab in labels})
            if not math.isfinite(value):
                continue
            groups.append(tuple(labels))
            processes += [len(tput[lab]) for lab in labels]
            worst = value if not math.isfinite(worst) else max(worst, value)
    return Resolution(worst, tuple(groups), tuple(processes))


def noisy_runs(data: ReportData) -> pd.DataFrame:
    """Finished runs whose timed epochs other processes disturbed, left out of speed claims."""
    return data.ok[data.ok["noisy"].eq(True)]


def underused_windows(data: ReportData) -> pd.DataFrame:
    """The steady windows of finished runs in which the worker left cores idle that its
    variant used in other windows, left out of speed claims: label, seed, epoch, cores (used
    in the window), busiest (the upper quartile of its variant's windows, the reference)."""
    columns = ["label", "seed", "epoch", "cores", "busiest"]
    steady = scores.steady_rows(data.epochs, data.warmup_epochs)
    if steady.empty:
        return pd.DataFrame(columns=columns)
    used = pd.to_numeric(steady["own_cpu_seconds"], errors="coerce") / steady["seconds"]
    steady = steady.assign(cores=used)
    # the reference as the rule takes it: every seed's windows that have a reading
    busiest = steady.dropna(subset=["cores"]).groupby("label")["cores"]
    flagged = data.ok_runs(steady[_underused(steady)])
    reference = flagged["label"].map(busiest.quantile(cores.BUSIEST_QUANTILE))
    return flagged.assign(busiest=reference)[columns]


def slowed_windows(data: ReportData) -> pd.DataFrame:
    """The steady windows of finished runs in which each sample cost the worker more CPU time
    than in its variant's median window, and that ran slower for it (harness/measure/cores.py:
    the CPU itself ran slower), left out of speed claims: label, seed, epoch, cost (the window's
    CPU seconds per sample over its variant's median window's)."""
    columns = ["label", "seed", "epoch", "cost"]
    steady = scores.steady_rows(data.epochs, data.warmup_epochs)
    if steady.empty or "slowed" not in steady.columns:
        return pd.DataFrame(columns=columns)
    own = pd.to_numeric(steady["own_cpu_seconds"], errors="coerce")
    samples = steady["samples_per_second"] * steady["seconds"]
    steady = steady.assign(cost=own / samples)
    normal = steady[~scores.flagged(steady)].groupby("label")["cost"].median()
    flagged = data.ok_runs(steady[steady["slowed"].eq(True)])
    return flagged.assign(cost=flagged["cost"] / flagged["label"].map(normal))[columns]


REPEATABLE_BAND = 0.10  # a window within +-10 % of its variant's median counts as repeatable


def repeatability(data: ReportData, band: float = REPEATABLE_BAND) -> pd.DataFrame:
    """Per label: how many of its steady windows (every quiet run's, flagged ones included:
    they are the slow modes this measures) lie within +-`band` of its median window; how many
    lie outside, how many of those are slower than the band (`slow`), and how many of the slow
    ones a flag names the cause of (`slow_flagged`: underused, slowed, or a window in which
    outside load used more than the noisy threshold). Runs that outside load disturbed
    (`noisy`) are left out. Columns: label, windows, within (a share), outside, slow,
    slow_flagged."""
    columns = ["label", "windows", "within", "outside", "slow", "slow_flagged"]
    quiet = data.ok[~data.ok["noisy"].eq(True)][["label", "seed"]].drop_duplicates()
    steady = scores.steady_rows(
        data.epochs.merge(quiet, on=["label", "seed"], how="inner"), data.warmup_epochs
    )
    steady = steady[steady["epoch"] > data.warmup_epochs]  # timed windows only
    judged = {  # per set: its CPUs and the foreign cores it called noisy
        name: (scores.recorded_cpus(st.manifest, st.epochs),
               scores.recorded_noisy_threshold(st.manifest.get("config") or {}))
        for name, st in zip(_unique_set_names(data.sets), data.sets, strict=True)
    }  # fmt: skip
    rows = []
    for lab, g in steady.groupby("label", sort=False):
        sps = pd.to_numeric(g["samples_per_second"], errors="coerce")
        g, sps = g[sps.notna()], sps.dropna()
        if sps.empty:
            continue
        outside = (sps / sps.median() - 1).abs() > band
        slow = sps / sps.median() < 1 - band
        foreign = pd.to_numeric(g.get("foreign_cpu_seconds"), errors="coerce")
        loaded = pd.Series(
            [cores.noisy_window(f, t, *judged[name])
             for f, t, name in zip(foreign, g["seconds"], g["set"], strict=True)],
            index=g.index,
        )  # fmt: skip
        explained = scores.flagged(g) | loaded
        rows.append({"label": lab, "windows": len(sps), "within": 1 - outside.mean(),
                     "outside": int(outside.sum()), "slow": int(slow.sum()),
                     "slow_flagged": int((slow & explained).sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def ladder(data: ReportData, aa: Resolution | None = None) -> pd.DataFrame:
    """Each level's cost ladder: its rungs in order (the form tutorials teach first), their
    median throughput, and each rung's speed-up over the rung below it: the ratio of pooled
    medians with a 95 % two-level bootstrap interval (processes, then their windows), and
    whether it is resolved: the whole interval beyond the suite's A/A resolution (`aa`,
    measured from `data` when not given) and beyond 1."""
    samples = throughput_by_process(data)
    aa = aa or resolution(data)
    on_ladder = data.ok.dropna(subset=["level", "rung"]).drop_duplicates("label")
    rows = []
    for level, rungs in on_ladder.groupby("level", sort=False):
        below: str | None = None
        for _, r in rungs.sort_values("rung").iterrows():
            lab = r["label"]
            if lab not in samples:
                continue
            row = {"level": level, "rung": int(r["rung"]), "variant": lab,
                   "samples/s (median)": stats.pooled_median(samples[lab]),
                   "processes": len(samples[lab])}  # fmt: skip
            if below is not None:
                step = stats.speed_ratio(samples[below], samples[lab], aa.value)
                row.update({"over": below, "speed-up": step.ratio, "95% CI":
                            _range(step.low, step.high), "resolved": _resolved(step)})  # fmt: skip
            rows.append(row)
            below = lab
    return pd.DataFrame(rows, columns=LADDER_COLUMNS)


LADDER_COLUMNS = [
    "level", "rung", "variant", "samples/s (median)", "processes", "over", "speed-up", "95% CI",
    "resolved",
]  # fmt: skip


def _resolved(ratio: stats.SpeedRatio) -> str:
    """'resolved', or 'not resolved' with why: too few processes for an interval, an interval
    that holds 1, or one that holds a difference the A/A control measured between identical
    computations."""
    if ratio.resolved:
        return "resolved"
    if not math.isfinite(ratio.low):
        return "not resolved (fewer than 2 processes)"
    if ratio.low <= 1 <= ratio.high:
        return "not resolved"
    return "not resolved (within the A/A resolution)"


def startup_breakdown(data: ReportData) -> pd.DataFrame:
    """Per ok run, the first step split into the manifest's `import_seconds` and
    `build_seconds` and the rest (task loading, tracing, the step itself): label, seed,
    import_seconds, build_seconds, rest. Empty when the manifests do not record them."""
    rows = []
    for s, set_name in zip(data.sets, _unique_set_names(data.sets), strict=True):
        for r in s.manifest.get("runs") or []:
            if r.get("import_seconds") is None or r.get("build_seconds") is None:
                continue
            rows.append(
                (
                    set_name,
                    str(r.get("variant")),
                    r.get("seed"),
                    r["import_seconds"],
                    r["build_seconds"],
                )
            )
    columns = ["set", "variant", "seed", "import_seconds", "build_seconds"]
    runs = pd.DataFrame(rows, columns=columns).astype({"seed": "Int64"})
    ok = data.ok[["set", "variant", "seed", "label", "first_step_seconds"]]
    merged = ok.merge(runs, on=["set", "variant", "seed"], how="inner")
    merged["rest"] = (
        merged["first_step_seconds"] - merged["import_seconds"] - merged["build_seconds"]
    ).clip(lower=0)
    return merged[["label", "seed", "import_seconds", "build_seconds", "rest"]]


def parity_differences(data: ReportData) -> pd.DataFrame:
    """Per step, |loss - numpy_scratch loss| of the same set and seed: columns label, seed,
    step, diff. Empty when no set holds a reference run."""
    rows = []
    steps = data.ok_runs(data.steps)
    names = _unique_set_names(data.sets)
    references = dict(zip(names, (s.reference for s in data.sets), strict=True))
    for name, frame in steps.groupby("set", sort=False):
        reference = references.get(name, reader.REFERENCE_BEFORE_STORED)
        ref = frame[frame["variant"] == reference][["seed", "step", "loss"]]
        if ref.empty:
            continue
        others = frame[frame["variant"] != reference]
        merged = others.merge(ref, on=["seed", "step"], suffixes=("", "_ref"))
        merged["diff"] = (merged["loss"] - merged["loss_ref"]).abs()
        rows.append(merged[["label", "seed", "step", "diff"]])
    if not rows:
        return pd.DataFrame(columns=["label", "seed", "step", "diff"])
    return pd.concat(rows, ignore_index=True)


def parity_was_run(data: ReportData) -> bool:
    return any(bool(s.config.get("parity")) for s in data.sets) or bool(
        data.summary["parity_max_abs_diff"].notna().any()
    )


def variant_table(data: ReportData) -> pd.DataFrame:
    """One row per variant label: the medians, spreads and intervals a reader compares."""
    tput = throughput_by_label(data)
    rows = []
    for lab in data.labels:
        runs = data.summary[data.summary["label"] == lab]
        ok = runs[runs["status"] == "ok"]
        acc = stats.mean_ci(ok["test_accuracy"])
        speed = stats.spread(tput.get(lab, []))
        first = stats.spread(ok["first_step_seconds"])
        target = stats.spread(ok["seconds_to_target"])
        rss = stats.spread(ok["peak_rss_mb"])
        parity = runs["parity_max_abs_diff"].max()
        rows.append(
            {
                "variant": lab,
                "api level": _first(runs["api_level"]),
                "runs ok": f"{len(ok)}/{len(runs)}",
                "test accuracy (mean)": acc.mean,
                "95% CI ±": acc.half_width,
                "samples/s (median)": speed.median,
                "samples/s IQR": _range(speed.q1, speed.q3),
                "first step s (median)": first.median,
                "s to target (median)": target.median,
                "peak RSS MB (median)": rss.median,
                "LOC": _first(runs["loc"]),
                "parity max |Δloss|": parity,
            }
        )
    return pd.DataFrame(rows)


# --- batch-size sweeps -------------------------------------------------------------------

SWEEP_COLUMNS = [
    "label",
    "batch_size",
    "n",  # throughput samples: epoch windows over every seed
    "median",
    "q1",
    "q3",
    "roofline",  # samples/s at the calibrated GEMM peak, the same for every label
    "fraction",  # median / roofline: summary.csv's roofline_fraction of the median
    "fraction_q1",
    "fraction_q3",
]


@dataclass(frozen=True)
class SweepData:
    """A batch-size sweep: every point's result set, and `table` (SWEEP_COLUMNS), one row per
    variant and batch size, from which the sweep figures, verdict and tables are all drawn."""

    folder: SweepFolder
    points: tuple[tuple[int, ResultSet], ...]  # smallest batch first
    labels: tuple[str, ...]
    table: pd.DataFrame
    # per batch size: each label's windows per process, and the folder's A/A resolution
    processes: dict[int, dict[str, dict[object, np.ndarray]]] = field(default_factory=dict)
    resolutions: dict[int, Resolution] = field(default_factory=dict)

    @property
    def batch_sizes(self) -> list[int]:
        return [size for size, _ in self.points]

    def pivot(self, column: str) -> pd.DataFrame:
        """`column` with one row per label (report order) and one column per batch size."""
        wide = self.table.pivot(index="label", columns="batch_size", values=column)
        return wide.reindex(index=list(self.labels), columns=self.batch_sizes)

    def roofline(self) -> pd.Series:
        """Roofline samples/s per batch size (NaN where the calibration is missing)."""
        return self.table.groupby("batch_size")["roofline"].first().reindex(self.batch_sizes)


def roofline_samples_per_second(manifest: dict[str, object]) -> float:
    """The throughput at which a step would cost only its GEMMs at the calibrated peak:
    peak_gflops * 1e9 / flops_per_sample; NaN without a calibration (--no-calibrate)."""
    calibration = manifest.get("calibration")
    if not isinstance(calibration, dict):
        return math.nan
    peak, flops = calibration.get("peak_gflops"), calibration.get("flops_per_sample")
    if not (peak and flops):
        return math.nan
    # The samples/s at which harness.measure.roofline.roofline_fraction would be exactly 1.
    return float(peak) * 1e9 / float(flops)


def sweep_data(folder: SweepFolder, points: Sequence[tuple[int, ResultSet]]) -> SweepData:
    """Per batch size, each variant's throughput samples exactly as the single-folder report
    takes them (`throughput_by_label`: the steady-state epoch windows of every ok seed), so a
    point of the sweep figure is the median a report of that folder alone shows."""
    points = tuple(sorted(points, key=lambda p: p[0]))
    labels: list[str] = []
    rows = []
    processes, resolutions = {}, {}
    for size, result_set in points:
        data = combine([result_set])
        labels += [lab for lab in data.labels if lab not in labels]
        roof = roofline_samples_per_second(result_set.manifest)
        processes[size] = throughput_by_process(data)
        resolutions[size] = resolution(data)
        for lab, nested in processes[size].items():
            s = stats.spread(np.concatenate(list(nested.values())))
            rows.append(
                {
                    "label": lab,
                    "batch_size": size,
                    "n": s.n,
                    "median": s.median,
                    "q1": s.q1,
                    "q3": s.q3,
                    "roofline": roof,
                    "fraction": s.median / roof,
                    "fraction_q1": s.q1 / roof,
                    "fraction_q3": s.q3 / roof,
                }
            )
    table = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    return SweepData(
        folder=folder,
        points=points,
        labels=tuple(labels),
        table=table,
        processes=processes,
        resolutions=resolutions,
    )


def _first(column: pd.Series) -> object:
    values = column.dropna()
    return values.iloc[0] if len(values) else None


def _range(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return ""
    return f"{format_number(low)} – {format_number(high)}"


def format_number(x: object) -> str:
    """How every number is printed in tables and sentences: 4 significant digits, thousands
    grouped for large values, empty for missing ones."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)) or x is pd.NA:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        v = float(x)
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return str(x)


def anatomy_table(result_set: ResultSet) -> pd.DataFrame:
    """One row per (variant, batch size) of the set's anatomy.csv: seconds per step of every
    part (harness.measure.anatomy.PARTS), the step's wall time, its coverage and method, the
    variant's level (summary.csv), and the floor of each part at that batch size from the
    calibration the manifest stores (roofline.floor_parts; empty without one)."""
    rows = result_set.anatomy
    if rows.empty:
        return pd.DataFrame()
    wide = rows.pivot_table(
        index=["variant", "batch_size"], columns="part", values="seconds_per_step", aggfunc="first"
    ).reindex(columns=list(anatomy.PARTS), fill_value=0.0)
    wide = wide.fillna(0.0)
    facts = ["step_seconds", "unprofiled_step_seconds", "coverage", "method"]
    facts = rows.groupby(["variant", "batch_size"])[facts].first()
    table = wide.join(facts).reset_index()
    levels = result_set.summary.drop_duplicates("variant").set_index("variant")["level"]
    table["level"] = [
        levels.get(v) if isinstance(levels.get(v), str) else v for v in table["variant"]
    ]
    calibration = result_set.manifest.get("calibration") or {}
    peak, bandwidth = calibration.get("peak_gflops"), calibration.get("bandwidth_gbs")
    flops, model = calibration.get("flops_per_sample"), calibration.get("step_bytes")
    for part in ("gemm", "optimizer", "other_math"):
        table[f"floor_{part}"] = np.nan
    if peak and bandwidth and flops and model:
        for i, batch in enumerate(table["batch_size"]):
            floor = roofline.floor_parts(int(batch), int(flops), peak, model, bandwidth)
            for part, seconds in floor.items():
                table.loc[i, f"floor_{part}"] = seconds
    return table


def costliest_part(row: pd.Series) -> tuple[str, float] | None:
    """The part of one anatomy row that costs the most over its floor, and by how much (seconds
    per step); None without a floor."""
    if pd.isna(row.get("floor_gemm")):
        return None
    floor = {p: float(row[f"floor_{p}"]) for p in ("gemm", "optimizer", "other_math")}
    over = anatomy.over_floor({p: float(row[p]) for p in anatomy.PARTS}, floor)
    part = max(over, key=lambda p: over[p])
    return part, over[part]
