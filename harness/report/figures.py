"""The report's figures: one function per figure, each draws from `ReportData` (or, for a
batch-size sweep, `SweepData`) and returns the PNG it wrote, or None when the results hold
nothing to draw (e.g. no parity run).

Every variant keeps one colour in every figure (`Palette`); curves are the mean over seeds
with a band from the lowest to the highest seed; axes carry units; an axis switches to a
log scale when its values span more than a factor of ten. Only finished (ok) runs are drawn:
failed runs are listed in the page's tables and verdict instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
from PIL import Image  # noqa: E402  (Pillow comes with matplotlib)

from harness.measure import stats  # noqa: E402
from harness.measure.anatomy import LABELS as PART_LABELS  # noqa: E402
from harness.report.data import (  # noqa: E402
    ReportData,
    SweepData,
    anatomy_table,
    format_number,
    ladder,
    parity_differences,
    startup_breakdown,
    throughput_by_label,
)
from harness.results.reader import REFERENCE_BEFORE_STORED  # noqa: E402

DPI = 90
WIDTH = 11.8  # inches: at DPI, the width of the page's column (1062 px)
LOG_SPAN = 10.0  # switch an axis to log scale above this max/min ratio
# Near-black shades for the NumPy reference of each combined result set.
REFERENCE_COLOURS = ("#222222", "#6e6e6e", "#a8a8a8")
ROOFLINE_COLOUR = "crimson"  # limits (parity tolerance, GEMM roofline): never a variant's colour

plt.rcParams.update(
    {
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titleweight": "bold",
        "legend.fontsize": 8,
        "font.size": 10,
    }
)


class Palette:
    """label -> colour, fixed for the whole report; the NumPy reference is always near-black
    so that the line every other variant is measured against stands out."""

    def __init__(self, labels: Sequence[str], reference: str = REFERENCE_BEFORE_STORED) -> None:
        cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
        # tab10's grey (index 7) is too close to the reference's colour.
        colours = [c for i, c in enumerate(cmap.colors) if not (cmap.N == 10 and i == 7)]
        self._colours: dict[str, object] = {}
        others = [lab for lab in labels if not _is_reference(lab, reference)]
        for i, lab in enumerate(others):
            self._colours[lab] = colours[i % len(colours)]
        references = [lab for lab in labels if _is_reference(lab, reference)]
        for i, lab in enumerate(references):
            self._colours[lab] = REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)]

    def __getitem__(self, label: str) -> object:
        return self._colours.get(label, REFERENCE_COLOURS[0])


def _is_reference(label: str, reference: str) -> bool:
    return label == reference or label.startswith(f"{reference} @ ")


def text(label: str) -> str:
    """A result string made safe for matplotlib: `$` would start mathtext and a leading `_`
    hides a legend entry."""
    label = label.replace("$", r"\$")
    return f" {label}" if label.startswith("_") else label


FigureFunction = Callable[[ReportData, Palette, Path], "Path | None"]
SweepFigureFunction = Callable[[SweepData, Palette, Path], "Path | None"]


def _line_style(colour: object) -> dict[str, Any]:
    # The reference goes on top, thinner: where every level agrees, its line shows through.
    ref = colour in REFERENCE_COLOURS
    return {"lw": 1.1 if ref else 1.8, "zorder": 4 if ref else 2}


# --- curves -------------------------------------------------------------------------------


def _band(
    ax: Axes, frame: pd.DataFrame, x: str, y: str, colour: object, label: str, **line: object
) -> None:
    """Mean over seeds as a line, min..max over seeds as a shaded band."""
    g = frame.groupby(x)[y]
    mean, low, high = g.mean(), g.min(), g.max()
    ax.plot(mean.index, mean.values, color=colour, label=text(label), **_line_style(colour), **line)
    if frame["seed"].nunique() > 1:
        ax.fill_between(mean.index, low.values, high.values, color=colour, alpha=0.15, lw=0)


def _smooth(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """Per run, a centred moving average of the step loss (batch noise hides the trend)."""
    out = frame.sort_values("step").copy()
    out["loss"] = out.groupby(["label", "seed"])["loss"].transform(
        lambda s: s.rolling(window, center=True, min_periods=1).mean()
    )
    return out


def loss_curves(data: ReportData, palette: Palette, out: Path) -> Path | None:
    steps = data.ok_runs(data.steps)
    epochs = data.ok_runs(data.epochs)
    if steps.empty and epochs.empty:
        return None
    fig, (ax_step, ax_epoch) = plt.subplots(1, 2, figsize=(WIDTH, 4.2))
    per_epoch = steps.groupby(["label", "seed", "epoch"]).size().median() if len(steps) else 1
    window = max(1, int(per_epoch // 10) or 1)
    smooth = _smooth(steps, window)
    for lab in data.plotted_labels():
        colour = palette[lab]
        s = smooth[smooth["label"] == lab]
        if len(s):
            _band(ax_step, s, "step", "loss", colour, lab)
        e = epochs[epochs["label"] == lab]
        if len(e):
            _band(ax_epoch, e, "epoch", "train_loss", colour, f"{lab} (train)")
            _band(ax_epoch, e, "epoch", "test_loss", colour, f"{lab} (test)", ls="--")
    smoothing = f", moving average over {window} steps" if window > 1 else ""
    ax_step.set(
        title="Training loss per step",
        xlabel=f"step (batch){smoothing}",
        ylabel="cross-entropy loss (nats)",
    )
    ax_epoch.set(title="Loss per epoch", xlabel="epoch", ylabel="cross-entropy loss (nats)")
    ax_epoch.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax_step, ax_epoch):
        _auto_log(ax, "y", ax.get_lines())
    _legend(ax_epoch, source=ax_step)
    _note(fig, "lines: mean over seeds; bands: lowest to highest seed; dashed: test loss")
    return _save(fig, out / "loss.png")


def output_loss_curves(data: ReportData, palette: Palette, out: Path) -> Path | None:
    """A task with several outputs: each output's training loss per epoch, one panel each."""
    from harness.report.task import output_losses

    losses = output_losses(data)
    if losses.empty:
        return None
    names = list(dict.fromkeys(losses["output"]))
    fig, axes = plt.subplots(1, len(names), figsize=(WIDTH, 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        of = losses[losses["output"] == name]
        for lab in data.plotted_labels():
            e = of[of["label"] == lab]
            if len(e):
                _band(ax, e, "epoch", "loss", palette[lab], lab)
        ax.set(title=f"Output {name}", xlabel="epoch", ylabel="cross-entropy loss (nats)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        _auto_log(ax, "y", ax.get_lines())
    _legend(axes[0][-1])
    _note(fig, "the mean of each epoch's steps; lines: mean over seeds; bands: lowest to highest")
    return _save(fig, out / "output_losses.png")


def parity(data: ReportData, palette: Palette, out: Path) -> Path | None:
    diffs = parity_differences(data)
    if diffs.empty:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    exact, total = 0, 0
    for lab in data.plotted_labels():
        d = diffs[diffs["label"] == lab]
        if d.empty:
            continue
        # The worst seed per step, as parity_max_abs_diff reports it; exact agreement (0)
        # has no place on a log axis and is counted in the note instead.
        worst = d.groupby("step")["diff"].max()
        exact += int((worst == 0).sum())
        total += len(worst)
        shown = worst[worst > 0]
        colour = palette[lab]
        ax.plot(shown.index, shown.values, ".", color=colour, ms=5, alpha=0.6)
        # The running maximum answers "does the gap grow over training?"
        ax.plot(worst.index, worst.cummax().values, color=colour, lw=1.6, label=text(lab))
    tolerance = data.parity_tolerance  # as the manifests store it
    ax.axhline(tolerance, color=ROOFLINE_COLOUR, lw=1, ls=":")
    ax.annotate(
        f"parity tolerance {tolerance:g}",
        (1, tolerance),
        xycoords=("axes fraction", "data"),
        ha="right",
        va="bottom",
        color=ROOFLINE_COLOUR,
        fontsize=8,
    )
    ax.set_yscale("log")
    ax.set(
        title=f"Difference to the reference ({data.reference}), per step",
        xlabel="step (batch)",
        ylabel="|loss − reference loss| (nats)",
    )
    _legend(ax)
    _note(
        fig,
        "same seed, weights and batches; dots: worst seed at each step; line: running maximum; "
        f"{exact} of {total} variant-steps agreed exactly (Δ = 0, not drawn)",
    )
    return _save(fig, out / "parity.png")


def accuracy_curves(data: ReportData, palette: Palette, out: Path) -> Path | None:
    epochs = data.ok_runs(data.epochs)
    if epochs.empty:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    for lab in data.plotted_labels():
        e = epochs[epochs["label"] == lab]
        if len(e):
            _band(ax, e, "epoch", "test_accuracy", palette[lab], lab, marker="o", ms=3)
    target = data.target_accuracy()
    if target is not None:
        ax.axhline(target, color="grey", lw=1, ls=":")
    ax.set(title="Test accuracy per epoch", xlabel="epoch", ylabel="test accuracy (fraction)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(ax)
    _note(fig, "mean over seeds; bands: lowest to highest seed; dotted: target accuracy")
    return _save(fig, out / "accuracy.png")


# --- one row per variant ------------------------------------------------------------------


def _rows(labels: Sequence[str], panels: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure with one row per variant label (first at the top) in each of `panels`."""
    fig, axes = plt.subplots(
        1, panels, figsize=(WIDTH, 1.3 + 0.45 * len(labels)), sharey=True, squeeze=False
    )
    for ax in axes[0]:
        ax.set_yticks(range(len(labels)), [text(lab) for lab in labels])
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.grid(axis="y", visible=False)
    axes[0][0].invert_yaxis()  # shared: once inverts every panel
    return fig, list(axes[0])


def _jitter(n: int, i: int) -> np.ndarray:
    # Deterministic spread of repeated points around their row, so equal values stay visible.
    return i + (np.linspace(-0.18, 0.18, n) if n > 1 else np.zeros(1))


def _clean_values(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    cleaned = {lab: stats.clean(v) for lab, v in values.items()}
    return {lab: v for lab, v in cleaned.items() if v.size}


def _per_variant(
    values: dict[str, np.ndarray],
    palette: Palette,
    *,
    title: str,
    xlabel: str,
    path: Path,
    note: str,
    order_by_median: bool = False,
    value_format: Callable[[float], str] = format_number,
) -> Path | None:
    """One panel: every sample as a dot, the median as a bar, the IQR as a box."""
    values = _clean_values(values)
    if not values:
        return None
    labels = list(values)
    if order_by_median:
        labels.sort(key=lambda lab: -float(np.median(values[lab])))
    fig, (ax,) = _rows(labels)
    _draw_rows(ax, labels, values, palette, value_format)
    ax.set(title=title, xlabel=xlabel)
    _note(fig, note)
    return _save(fig, path)


def _draw_rows(
    ax: Axes,
    labels: Sequence[str],
    values: dict[str, np.ndarray],
    palette: Palette,
    value_format: Callable[[float], str],
) -> None:
    for i, lab in enumerate(labels):
        v = values[lab]
        s = stats.spread(v)
        colour = palette[lab]
        ax.barh(i, s.q3 - s.q1, left=s.q1, height=0.5, color=colour, alpha=0.25, lw=0)
        ax.plot([s.median, s.median], [i - 0.3, i + 0.3], color=colour, lw=2.5)
        ax.plot(np.sort(v), _jitter(v.size, i), "o", color=colour, ms=4, alpha=0.8)
        ax.annotate(
            value_format(s.median),
            (s.max, i),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color="#333333",
        )
    ax.margins(x=0.12)
    if not _auto_log(ax, "x", [values[lab] for lab in labels]):
        ax.set_xlim(left=0)  # on a linear axis, lengths from zero make ratios readable


def _ok_column(data: ReportData, column: str) -> dict[str, np.ndarray]:
    ok = data.ok
    return {lab: ok.loc[ok["label"] == lab, column].to_numpy(float) for lab in data.labels}


def final_accuracy(data: ReportData, palette: Palette, out: Path) -> Path | None:
    values = _ok_column(data, "test_accuracy")
    values = {lab: stats.clean(v) for lab, v in values.items() if stats.clean(v).size}
    if not values:
        return None
    labels = list(values)
    fig, (ax,) = _rows(labels)
    for i, lab in enumerate(labels):
        ci = stats.mean_ci(values[lab])
        colour = palette[lab]
        ax.plot(values[lab], _jitter(values[lab].size, i), "o", color=colour, ms=4, alpha=0.5)
        if ci.n >= 2:
            # An accuracy cannot leave [0, 1]; the printed half-width keeps the full interval.
            err = [[ci.mean - max(ci.low, 0.0)], [min(ci.high, 1.0) - ci.mean]]
            ax.errorbar(ci.mean, i, xerr=err, fmt="D", color=colour, capsize=5, ms=6, lw=2)
            label = f"{ci.mean:.4f} ± {ci.half_width:.4f}"
        else:
            ax.plot(ci.mean, i, "D", color=colour, ms=6)
            label = f"{ci.mean:.4f} (one seed: no interval)"
        # The numbers in a column right of the axes, where no interval can cover them.
        ax.annotate(label, (1.01, i), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.margins(x=0.1)
    low, high = ax.get_xlim()
    ax.set_xlim(max(low, 0.0), min(high, 1.0))  # accuracy lives in [0, 1]
    ax.set(title="Final test accuracy per variant", xlabel="test accuracy (fraction)")
    _note(fig, "diamond: mean over seeds with its 95 % t-interval; dots: one seed each")
    return _save(fig, out / "final_accuracy.png")


def throughput(data: ReportData, palette: Palette, out: Path) -> Path | None:
    return _per_variant(
        throughput_by_label(data),
        palette,
        title="Training throughput (steady state), fastest first",
        xlabel="training samples per second",
        path=out / "throughput.png",
        note="dots: one epoch window each (epochs 2..N, all seeds); bar: median; box: IQR",
        order_by_median=True,
    )


STARTUP_PARTS = (
    ("import_seconds", "import (TensorFlow start-up)", "#8da0cb"),
    ("build_seconds", "build the model", "#fc8d62"),
    ("rest", "task, tracing, first step", "#66c2a5"),
)


def first_step(data: ReportData, palette: Palette, out: Path) -> Path | None:
    values = _clean_values(_ok_column(data, "first_step_seconds"))
    if not values:
        return None
    labels = list(values)
    parts = startup_breakdown(data)
    parts = parts[parts["label"].isin(labels)]
    fig, axes = _rows(labels, panels=2 if len(parts) else 1)
    _draw_rows(axes[0], labels, values, palette, lambda s: f"{s:.3g} s")
    fig.suptitle("First step: from process start to the end of training step 1", weight="bold")
    axes[0].set(title="per seed", xlabel="seconds")
    if len(parts):
        # Where the first step's time goes: medians over seeds, stacked on a linear axis.
        ax = axes[1]
        medians = parts.groupby("label")[[c for c, _, _ in STARTUP_PARTS]].median()
        left = np.zeros(len(labels))
        for column, name, colour in STARTUP_PARTS:
            width = medians.reindex(labels)[column].fillna(0).to_numpy()
            ax.barh(range(len(labels)), width, left=left, color=colour, height=0.6, label=name)
            left += width
        ax.set(title="where it goes (median over seeds)", xlabel="seconds")
        _legend(ax)
    _note(fig, "dots: one seed each; bar: median; box: interquartile range")
    return _save(fig, out / "first_step.png")


def time_to_target(data: ReportData, palette: Palette, out: Path) -> Path | None:
    target = data.target_accuracy()
    if target is None:
        return None
    path = _per_variant(
        _ok_column(data, "seconds_to_target"),
        palette,
        title=f"Training time to reach {target:.1%} test accuracy",
        xlabel="training seconds (evaluation excluded)",
        path=out / "time_to_target.png",
        note=_never_note(data, "seconds_to_target"),
        value_format=lambda s: f"{s:.3g} s",
    )
    return path


def _never_note(data: ReportData, column: str) -> str:
    ok = data.ok
    never = [
        f"{lab} ({int(n)}/{len(g)} seeds)"
        for lab, g in ok.groupby("label", sort=False)
        if (n := g[column].isna().sum())
    ]
    base = "dots: one seed each; bar: median"
    return base + ("; never reached: " + ", ".join(never) if never else "")


def peak_memory(data: ReportData, palette: Palette, out: Path) -> Path | None:
    return _per_variant(
        _ok_column(data, "peak_rss_mb"),
        palette,
        title="Peak memory of the worker process",
        xlabel="peak resident set size (MiB)",
        path=out / "memory.png",
        note="dots: one seed each; bar: median",
        value_format=lambda m: f"{m:,.0f} MiB",
    )


def loc_vs_throughput(data: ReportData, palette: Palette, out: Path) -> Path | None:
    tput = throughput_by_label(data)
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    drawn = []
    for lab in data.plotted_labels():
        loc = data.summary.loc[data.summary["label"] == lab, "loc"].dropna()
        s = stats.spread(tput.get(lab, []))
        if loc.empty or not s.n:
            continue
        x = float(loc.iloc[0])
        colour = palette[lab]
        ax.errorbar(
            x,
            s.median,
            yerr=[[s.median - s.q1], [s.q3 - s.median]],
            fmt="o",
            color=colour,
            ms=8,
            capsize=4,
            label=text(lab),
        )
        ax.annotate(text(lab), (x, s.median), xytext=(7, 4), textcoords="offset points", fontsize=8)
        drawn.append(s.median)
    if not drawn:
        plt.close(fig)
        return None
    _auto_log(ax, "y", [np.array(drawn)])
    ax.margins(x=0.15, y=0.15)
    ax.set(
        title="What control costs: source lines against throughput",
        xlabel="logical lines of the variant's source",
        ylabel="training samples per second (median)",
    )
    _note(fig, "error bars: interquartile range of the epoch windows")
    return _save(fig, out / "loc_vs_throughput.png")


def cost_ladder(data: ReportData, palette: Palette, out: Path) -> Path | None:
    """One panel per level: its rungs left to right, each rung's throughput windows, and the
    speed-up over the rung below written above it."""
    table = ladder(data)
    levels = [lv for lv, g in table.groupby("level", sort=False) if len(g) > 1]
    if not levels:
        return None
    samples = throughput_by_label(data)
    fig, axes = plt.subplots(1, len(levels), figsize=(WIDTH, 4.2), squeeze=False)
    for ax, level in zip(axes[0], levels, strict=True):
        rungs = table[table["level"] == level]
        for i, r in enumerate(rungs.itertuples()):
            values = samples[r.variant]
            ax.scatter(_jitter(values.size, i), values, s=12, color=palette[r.variant])
            ax.hlines(np.median(values), i - 0.3, i + 0.3, color=palette[r.variant], lw=2.5)
            if i:
                resolved = rungs["resolved"].iloc[i] == "resolved"
                ax.annotate(
                    f"{rungs['speed-up'].iloc[i]:.2f}×" + ("" if resolved else " (n.r.)"),
                    (i, np.median(values)), xytext=(0, 9), textcoords="offset points",
                    ha="center", fontsize=8, weight="bold",
                )  # fmt: skip
        ax.set_xticks(range(len(rungs)), [text(v) for v in rungs["variant"]], rotation=30,
                      ha="right", fontsize=8)  # fmt: skip
        ax.set_ylim(0, 1.18 * float(rungs["samples/s (median)"].max()))  # room for the labels
        ax.set_xlim(-0.6, len(rungs) - 0.4)
        ax.set(title=level, ylabel="training samples per second")
    _note(
        fig,
        "dots: one epoch window each; bar: median; label: speed-up over the rung to its left "
        "(n.r.: not resolved over processes and the A/A resolution)",
    )
    return _save(fig, out / "cost_ladder.png")


# The parts of a step in the order they are stacked, and their colours (no variant's: a part
# is the same colour whoever runs it).
STEP_PARTS = {
    "gemm": "#1f77b4",
    "other_math": "#2ca02c",
    "optimizer": "#ff7f0e",
    "xla_fused": "#9467bd",
    "rest": "#bbbbbb",
}
FLOOR_PARTS = ("gemm", "optimizer", "other_math")


def step_anatomy(data: ReportData, palette: Palette, out: Path) -> Path | None:
    """One panel per batch size: a stacked bar per variant (its step's parts, anatomy.csv) and
    at the top the floor of the step at that batch size (GEMMs at the calibrated peak, the
    update's and the other bytes at the calibrated bandwidth)."""
    tables = []
    for s in data.sets:
        table = anatomy_table(s)
        if not table.empty:
            if len(data.sets) > 1:
                table["variant"] = table["variant"] + f" @ {s.name}"
            tables.append(table)
    if not tables:
        return None
    table = pd.concat(tables, ignore_index=True)
    sizes = sorted(table["batch_size"].unique())
    height = 2.0 + 0.42 * (table.groupby("batch_size").size().max() + 1)
    fig, axes = plt.subplots(1, len(sizes), figsize=(WIDTH, height), squeeze=False)
    labelled: set[str] = set()
    for ax, size in zip(axes[0], sizes, strict=True):
        rows = table[table["batch_size"] == size].sort_values("step_seconds", ascending=False)
        bars = [
            (r["variant"], {p: float(r[p]) * 1e3 for p in STEP_PARTS})
            for r in rows.to_dict("records")
        ]
        if not pd.isna(rows["floor_gemm"].iloc[0]):  # the floor depends on the batch size only
            bars.append(
                ("floor", {p: float(rows[f"floor_{p}"].iloc[0]) * 1e3 for p in FLOOR_PARTS})
            )
        for y, (_, parts) in enumerate(bars):
            left = 0.0
            for part, ms in parts.items():
                label = None if part in labelled else PART_LABELS[part]
                labelled.add(part)
                ax.barh(y, ms, left=left, color=STEP_PARTS[part], edgecolor="white", lw=0.5,
                        label=label)  # fmt: skip
                left += ms
            plain = rows["unprofiled_step_seconds"].iloc[y] if y < len(rows) else np.nan
            label = f"{left:.3g} ms" + (
                "" if pd.isna(plain) else f" ({plain * 1e3:.3g} unprofiled)"
            )
            ax.annotate(label, (left, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)  # fmt: skip
        ax.set_yticks(range(len(bars)), [text(n) for n, _ in bars], fontsize=8)
        ax.set(title=f"batch {size}", xlabel="milliseconds per training step")
        ax.set_xlim(0, 1.35 * max(sum(p.values()) for _, p in bars))
    handles = [h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]]
    labels = [lab for ax in axes[0] for lab in ax.get_legend_handles_labels()[1]]
    # upper right: beside the floor's bar, the shortest (the floor is drawn last, at the top)
    axes[0][-1].legend(handles, labels, loc="upper right", fontsize=7)
    coverage = ", ".join(
        f"{v} b{b} {c:.0%}"
        for v, b, c in zip(table["variant"], table["batch_size"], table["coverage"], strict=True)
    )
    _note(fig, f"share of each step the parts measured: {coverage}")
    return _save(fig, out / "step_anatomy.png")


# The report's figures in page order, with the heading and caption the page shows.
FIGURES: tuple[tuple[str, str, FigureFunction], ...] = (
    (
        "Loss",
        "Loss of every variant, overlaid. Curves that lie on top of each other "
        "mean the API levels learn the same thing.",
        loss_curves,
    ),
    (
        "Loss of each output",
        "A model with several outputs: the training loss of each, per epoch (the total, "
        "which training minimises, is the loss above).",
        output_loss_curves,
    ),
    (
        "Parity with the NumPy reference",
        "The zoomed difference of each variant's per-step loss to numpy_scratch for the same seed.",
        parity,
    ),
    ("Test accuracy per epoch", "Test accuracy after each epoch.", accuracy_curves),
    (
        "Final accuracy",
        "Test accuracy after the last epoch, with 95 % confidence intervals over seeds.",
        final_accuracy,
    ),
    (
        "Throughput",
        "Training samples per second once tracing is done; every dot is one epoch of one seed.",
        throughput,
    ),
    (
        "Cost ladder",
        "Each API level from the form tutorials teach (left) to the fastest form it allows "
        "(right): what every convenience costs, measured in the same suite.",
        cost_ladder,
    ),
    (
        "Step anatomy",
        "Each variant's steady step split by the framework's profiler into GEMMs, other math, "
        "the optimizer update, XLA's fused kernels and the rest (Python, dispatch, syncs, "
        "input), against the floor of the step at that batch size. Measured after the timed "
        "runs (`mlpbench run --anatomy`): the profiler slows what it watches, so the bars are "
        "longer than the throughput figure's steps.",
        step_anatomy,
    ),
    (
        "First step",
        "What starting costs: imports, building the model and tracing or compiling the first step.",
        first_step,
    ),
    (
        "Time to target",
        "Training seconds until the test accuracy first reached the target.",
        time_to_target,
    ),
    ("Peak memory", "Peak resident memory of each worker process.", peak_memory),
    (
        "Lines of code against throughput",
        "Each API level's source size against its speed: what control costs.",
        loc_vs_throughput,
    ),
)


def draw_all(
    data: ReportData, out: Path, palette: Palette | None = None
) -> list[tuple[str, str, Path]]:
    """Draw every figure that has data into `out`; (heading, caption, png) in page order.
    A sweep report passes its own palette, so a variant has one colour on the whole page."""
    return _draw(FIGURES, data, palette or Palette(data.labels, data.reference), out)


def _draw(
    figures: Sequence[tuple[str, str, Callable[[Any, Palette, Path], Path | None]]],
    data: ReportData | SweepData,
    palette: Palette,
    out: Path,
) -> list[tuple[str, str, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    drawn = []
    for heading, caption, draw in figures:
        path = draw(data, palette, out)
        if path is not None:
            drawn.append((heading, caption, path))
    return drawn


# --- batch-size sweeps --------------------------------------------------------------------


def _sweep_lines(
    ax: Axes, sweep: SweepData, palette: Palette, column: str, low: str, high: str
) -> list[float]:
    """Per variant, `column` against batch size with a band from `low` to `high`; returns
    every value drawn (for the axis scale)."""
    drawn: list[float] = []
    for lab in sweep.labels:
        rows = sweep.table[sweep.table["label"] == lab].dropna(subset=[column])
        if rows.empty:
            continue
        rows = rows.sort_values("batch_size")
        colour = palette[lab]
        x = rows["batch_size"].to_numpy(float)
        ax.plot(x, rows[column], "o-", ms=5, color=colour, label=text(lab), **_line_style(colour))
        ax.fill_between(x, rows[low], rows[high], color=colour, alpha=0.15, lw=0)
        drawn += [*rows[column], *rows[low], *rows[high]]
    return drawn


def _batch_axis(ax: Axes, sizes: Sequence[int]) -> None:
    """Batch sizes on a log axis (sweeps double or quadruple them), ticked at the swept sizes."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes), [str(b) for b in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("batch size (samples per training step, log scale)")


def sweep_throughput(sweep: SweepData, palette: Palette, out: Path) -> Path | None:
    if sweep.table["median"].notna().sum() == 0:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 4.6))
    values = _sweep_lines(ax, sweep, palette, "median", "q1", "q3")
    roof = sweep.roofline().dropna()
    if len(roof):
        ax.plot(roof.index.to_numpy(float), roof.to_numpy(), "--", color=ROOFLINE_COLOUR, lw=1.6,
                label="GEMM roofline")  # fmt: skip
        values += list(roof)
    _batch_axis(ax, sweep.batch_sizes)
    _log_scale(ax, "y", np.asarray(values, dtype=float))  # log-log: slopes read as exponents
    ax.set(title="Training throughput against batch size", ylabel="training samples per second")
    _legend(ax)
    note = (
        "lines: median over the steady-state epoch windows (epochs 2..N) of every seed; "
        "bands: interquartile range; "
    )
    if len(roof):
        note += "dashed: GEMM roofline, calibrated peak GFLOP/s × 1e9 ÷ FLOPs per sample"
    else:
        note += "no GEMM roofline: the sweep ran without calibration"
    _note(fig, note)
    return _save(fig, out / "sweep_throughput.png")


def sweep_roofline(sweep: SweepData, palette: Palette, out: Path) -> Path | None:
    if sweep.table["fraction"].notna().sum() == 0:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    values = _sweep_lines(ax, sweep, palette, "fraction", "fraction_q1", "fraction_q3")
    ax.axhline(1.0, color=ROOFLINE_COLOUR, lw=1.2, ls="--")
    ax.annotate(
        "GEMM roofline",
        (1, 1.0),
        xycoords=("axes fraction", "data"),
        ha="right",
        va="bottom",
        color=ROOFLINE_COLOUR,
        fontsize=8,
    )
    _batch_axis(ax, sweep.batch_sizes)
    if not _auto_log(ax, "y", [np.array([*values, 1.0])]):
        ax.set_ylim(bottom=0)
    ax.set(
        title="Fraction of the GEMM roofline against batch size",
        ylabel="achieved FLOP/s ÷ calibrated peak",
    )
    _legend(ax)
    _note(fig, "median throughput over the roofline at that batch size; bands: interquartile range")
    return _save(fig, out / "sweep_roofline.png")


# The sweep section's figures, in page order, with heading and caption.
SWEEP_FIGURES: tuple[tuple[str, str, SweepFigureFunction], ...] = (
    (
        "Throughput against batch size",
        "Where a line rises as fast as the batch grows, a fixed cost per step (Python, framework "
        "dispatch) dominates; where it flattens under the dashed roofline, the GEMMs do.",
        sweep_throughput,
    ),
    (
        "Fraction of the GEMM roofline",
        "How close each level gets to the matrix products' speed on this machine at each "
        "batch size (1 = the step costs only its GEMMs).",
        sweep_roofline,
    ),
)


def draw_sweep(sweep: SweepData, out: Path, palette: Palette) -> list[tuple[str, str, Path]]:
    """Draw the sweep figures that have data into `out`; (heading, caption, png)."""
    return _draw(SWEEP_FIGURES, sweep, palette, out)


# --- helpers ------------------------------------------------------------------------------


def _auto_log(ax: Axes, axis: str, series: Sequence[object]) -> bool:
    """Log scale when the positive values span more than LOG_SPAN (e.g. eager vs XLA);
    returns whether it switched. Ticks stay plain numbers (0.5, 2, 40000), not powers."""
    arrays = []
    for s in series:
        if hasattr(s, "get_ydata"):
            arrays.append(np.asarray(s.get_ydata(), dtype=float))
        else:
            arrays.append(np.asarray(s, dtype=float))
    values = np.concatenate(arrays) if arrays else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if not (values.size and values.max() / values.min() > LOG_SPAN):
        return False
    _log_scale(ax, axis, values)
    return True


def _log_scale(ax: Axes, axis: str, values: np.ndarray) -> None:
    """A log axis whose ticks stay plain numbers (0.5, 2, 40000), not powers."""
    values = values[np.isfinite(values) & (values > 0)]
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    if not values.size:
        return
    target = ax.yaxis if axis == "y" else ax.xaxis
    span = values.max() / values.min()
    if span < LOG_SPAN:  # within one decade (a forced log axis): tick every 1..9 x 10^k
        target.set_major_locator(LogLocator(subs=tuple(range(1, 10))))
    elif span < 1e3:  # few decades: label 1-2-5 so ticks are not sparse
        target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    target.set_minor_formatter(NullFormatter())


def _note(fig: Figure, note: str) -> None:
    fig.text(0.01, 0.005, text(note), fontsize=7.5, color="#555555", ha="left", va="bottom")


def _legend(ax: Axes, source: Axes | None = None) -> None:
    """The legend right of `ax`, where it covers no curve; entries come from `source` when a
    neighbouring panel holds one line per variant."""
    handles, names = (source or ax).get_legend_handles_labels()
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    # A 256-colour palette (octree keeps the variant colours exact) is a quarter of the
    # bytes, and every figure is stored twice: embedded in the page and beside it.
    image = Image.open(buffer).convert("RGB")
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        path, optimize=True
    )
    return path
