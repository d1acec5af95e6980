"""`mlpbench compare A B`: per variant, how B differs from the baseline A.

Throughput is compared over processes, the level where speed varies, never as one pair of
numbers nor as pooled windows: B/A is the ratio of the pooled medians of the steady-state
epoch windows, with a two-level bootstrap interval (seeds, then their windows) at confidence
1 - alpha, and r is the larger A/A resolution of the two folders (the largest difference each
measured between variants known to compute the same thing; 0 when neither recorded one, so
the interval alone decides). Per variant, with threshold t and the interval [low, high]:

- slower: high < 1 - t and high < 1 / (1 + r): even the interval's most favourable end is a
  slowdown beyond the threshold and beyond what the suite can tell from noise. This alone, or
  no finished run in B, makes the command exit 1 in CI.
- faster: low > 1 + t and low > 1 + r.
- within threshold: the interval lies beyond 1 and the resolution, so a change is resolved, but
  it does not lie wholly beyond the threshold.
- not resolved: the interval holds 1 or a change within the resolution (or a side has fewer
  than 2 processes, which gives no interval): no change is shown, which is no proof of none.

The two-sided Mann-Whitney U test on per-process medians is shown beside it (p); with 3 seeds
against 3 it can never go below 0.1, which is why the interval, not p, decides.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from harness.measure import stats
from harness.report.data import (
    ReportData,
    combine,
    format_number,
    resolution,
    throughput_by_process,
)
from harness.results.reader import ResultsError, ResultSet, read_results

# Environment keys worth pointing out when they differ: what a comparison is usually about.
ENVIRONMENT_KEYS = ("tensorflow", "keras", "numpy", "python", "cpu_model", "gpus", "hostname")
# Settings that change what is measured: a comparison across them is not like for like.
CONFIG_KEYS = ("device", "dataset", "epochs", "batch_size", "hidden", "optimizer", "jobs", "dtype")
CONFIG_DEFAULTS = {"dtype": "float32"}  # not stored in the manifest when it is the default


@dataclass(frozen=True)
class Throughput:
    """B's throughput against A's, over processes (seeds)."""

    a: stats.Spread  # A's windows, every seed's pooled
    b: stats.Spread
    speed: stats.SpeedRatio  # B over A, with its two-level interval and the resolution
    test: stats.TestResult  # Mann-Whitney U on per-process medians

    @property
    def ratio(self) -> float:
        return self.speed.ratio


@dataclass(frozen=True)
class VariantChange:
    variant: str
    runs_a: str  # "ok/total", or "" when the variant is absent
    runs_b: str
    throughput: Throughput
    accuracy_a: stats.MeanCI
    accuracy_b: stats.MeanCI
    first_step: stats.ShiftResult
    # slower | faster | within threshold | not resolved | only in A | only in B
    # | none finished in B | no data
    verdict: str

    @property
    def regressed(self) -> bool:
        # B lost every timing that A had (all its runs failed or timed out): a gate must fail
        return self.verdict in ("slower", "none finished in B")


@dataclass(frozen=True)
class Comparison:
    a: ResultSet
    b: ResultSet
    threshold: float
    alpha: float
    changes: tuple[VariantChange, ...]
    notes: tuple[str, ...]  # what differs between the two sets besides the variants
    resolution: float = math.nan  # the larger A/A resolution of A and B; NaN: neither measured

    @property
    def regressions(self) -> list[VariantChange]:
        return [c for c in self.changes if c.regressed]


def compare_dirs(a: Path, b: Path, *, threshold: float = 0.05, alpha: float = 0.05) -> Comparison:
    return compare(read_results(a), read_results(b), threshold=threshold, alpha=alpha)


def compare(
    a: ResultSet, b: ResultSet, *, threshold: float = 0.05, alpha: float = 0.05
) -> Comparison:
    # Each set on its own, so labels are the plain variant names of that set.
    da, db = combine([a]), combine([b])
    ta, tb = throughput_by_process(da), throughput_by_process(db)
    measured = [r.value for r in (resolution(da), resolution(db)) if r.measured]
    aa = max(measured, default=math.nan)
    variants = list(da.labels) + [v for v in db.labels if v not in da.labels]
    changes = []
    for v in variants:
        shift = _throughput(ta.get(v, {}), tb.get(v, {}), aa, 1 - alpha)
        changes.append(
            VariantChange(
                variant=v,
                runs_a=_runs(da, v),
                runs_b=_runs(db, v),
                throughput=shift,
                accuracy_a=stats.mean_ci(_ok(da, v, "test_accuracy")),
                accuracy_b=stats.mean_ci(_ok(db, v, "test_accuracy")),
                first_step=stats.compare_samples(
                    _ok(da, v, "first_step_seconds"), _ok(db, v, "first_step_seconds")
                ),
                verdict=_verdict(v, da, db, shift, threshold),
            )
        )
    if not any(c.verdict in JUDGED for c in changes):
        raise ResultsError(_nothing_compared(a, b, changes))
    notes = tuple(_notes(a, b))
    return Comparison(a, b, threshold, alpha, tuple(changes), notes, aa)


def _throughput(a: stats.Nested, b: stats.Nested, aa: float, confidence: float) -> Throughput:
    def pooled(nested: stats.Nested) -> stats.Spread:
        return stats.spread([w for windows in nested.values() for w in windows])

    return Throughput(
        a=pooled(a),
        b=pooled(b),
        speed=stats.speed_ratio(a, b, aa, confidence=confidence),
        test=stats.process_test(a, b),
    )


# The verdicts a comparison was made for; a gate that judged none of its variants has not
# shown that nothing is slower.
JUDGED = ("slower", "faster", "within threshold", "not resolved", "none finished in B")


def _nothing_compared(a: ResultSet, b: ResultSet, changes: list[VariantChange]) -> str:
    where = f"nothing to compare between {a.path} and {b.path}"
    if not any(c.verdict == "no data" for c in changes):
        return f"{where}: they share no variant; compare two runs of the same variants"
    return (
        f"{where}: no variant has a finished run that other processes did not disturb "
        "(noisy) in both; run the suite again on a quieter machine, or with --retry-noisy N"
    )


def _runs(data: ReportData, variant: str) -> str:
    runs = data.summary[data.summary["label"] == variant]
    if runs.empty:
        return ""
    return f"{int((runs['status'] == 'ok').sum())}/{len(runs)}"


def _ok(data: ReportData, variant: str, column: str) -> np.ndarray:
    return data.ok.loc[data.ok["label"] == variant, column].to_numpy(float)


def _verdict(
    variant: str,
    da: ReportData,
    db: ReportData,
    shift: Throughput,
    threshold: float,
) -> str:
    if variant not in db.labels:
        return "only in A"
    if variant not in da.labels:
        return "only in B"
    # A's runs that finished count even when all were noisy: B losing every run is a
    # regression whatever A's timings were
    finished_a, finished_b = ((d.ok["label"] == variant).any() for d in (da, db))
    if finished_a and not finished_b or shift.a.n and not shift.b.n:
        return "none finished in B"
    if not math.isfinite(shift.ratio):
        return "no data"
    speed = shift.speed  # its interval at confidence 1 - alpha, its resolution the suites'
    if not speed.resolved:
        return "not resolved"
    if speed.high < 1 - threshold:
        return "slower"
    if speed.low > 1 + threshold:
        return "faster"
    return "within threshold"


def _notes(a: ResultSet, b: ResultSet) -> list[str]:
    notes = []
    for key in ENVIRONMENT_KEYS:
        va, vb = a.environment.get(key), b.environment.get(key)
        if va != vb:
            notes.append(f"{key}: {va} -> {vb}")
    for key in CONFIG_KEYS:
        va, vb = (c.config.get(key, CONFIG_DEFAULTS.get(key)) for c in (a, b))
        if va != vb:
            notes.append(f"{key}: {va} -> {vb}")
    fa = {k: t.get("fingerprint") for k, t in (a.manifest.get("tasks") or {}).items()}
    fb = {k: t.get("fingerprint") for k, t in (b.manifest.get("tasks") or {}).items()}
    shared = set(fa) & set(fb)
    if any(fa[k] != fb[k] for k in shared) or not shared:
        notes.append("the tasks differ (data, weights or batch order): accuracy is not paired")
    return notes


# --- presentation -------------------------------------------------------------------------


def changes_frame(result: Comparison) -> pd.DataFrame:
    """The comparison as text cells, shared by the terminal table and the HTML page."""
    rows = []
    interval = f"{_percent(1 - result.alpha)} interval"
    for c in result.changes:
        t, f = c.throughput, c.first_step
        rows.append(
            {
                "variant": c.variant,
                "runs A | B": f"{c.runs_a or '–'} | {c.runs_b or '–'}",
                "processes A | B": "{} | {}".format(*t.speed.processes),
                "A samples/s": format_number(t.a.median),
                "B samples/s": format_number(t.b.median),
                "B/A": _ratio(t.ratio),
                interval: _interval(t.speed),
                "p (per process)": _p(t.test),
                "accuracy A → B": _accuracy(c.accuracy_a, c.accuracy_b),
                "first step A → B": _first_step(f),
                "verdict": c.verdict,
            }
        )
    return pd.DataFrame(rows)


def _ratio(r: float) -> str:
    return f"{r:.2f}×" if math.isfinite(r) else ""


def _interval(r: stats.SpeedRatio) -> str:
    return f"{r.low:.2f} – {r.high:.2f}" if math.isfinite(r.low) else ""


def _percent(x: float) -> str:
    """0.05 -> '5%', 0.125 -> '12.5%', 0.95 -> '95%'."""
    return f"{x:.0%}" if round(x * 100, 6) % 1 == 0 else f"{x:.1%}"


def resolution_text(result: Comparison) -> str:
    if not math.isfinite(result.resolution):
        return "A/A resolution: not measured in A or B (the interval alone decides)"
    return (
        f"A/A resolution: {result.resolution * 100:.1f} % (the larger of A's and B's: the "
        "largest difference each measured between variants known to compute the same thing)"
    )


def _p(test: stats.TestResult) -> str:
    return f"{test.p_value:.2g}" if test.possible else f"n/a ({test.reason})"


def _accuracy(a: stats.MeanCI, b: stats.MeanCI) -> str:
    if not (math.isfinite(a.mean) and math.isfinite(b.mean)):
        return ""
    return f"{a.mean:.4f} → {b.mean:.4f} ({(b.mean - a.mean) * 100:+.2f} pp)"


def _first_step(f: stats.ShiftResult) -> str:
    if not (f.a.n and f.b.n):
        return ""
    return f"{f.a.median:.3g} → {f.b.median:.3g} s ({_ratio(f.ratio)})"


def _headline(result: Comparison) -> str:
    pct, confidence = _percent(result.threshold), _percent(1 - result.alpha)
    lost = [c.variant for c in result.regressions if c.verdict != "slower"]
    slower = [c.variant for c in result.regressions if c.verdict == "slower"]
    parts = []
    if slower:
        parts.append(
            f"{len(slower)} variant(s) slower by more than {pct} at {confidence} confidence: "
            + ", ".join(slower)
        )
    if lost:
        parts.append(f"{len(lost)} variant(s) with no finished run in B: {', '.join(lost)}")
    if not parts:
        parts.append(f"no variant is slower by more than {pct} at {confidence} confidence")
    if unjudged := [c.variant for c in result.changes if c.verdict == "no data"]:
        parts.append(f"not compared, no quiet finished run in A or B: {', '.join(unjudged)}")
    return "; ".join(parts)


STYLES = {
    "slower": "bold red",
    "none finished in B": "bold red",
    "faster": "bold green",
    "within threshold": "",
    "not resolved": "",
    "no data": "yellow",
}


def print_table(result: Comparison) -> None:
    """The comparison as a rich table on stdout, regressions in red."""
    from rich.console import Console
    from rich.markup import escape as rich_escape
    from rich.table import Table

    frame = changes_frame(result)
    table = Table(
        title=f"{rich_escape(result.a.name)} (A) → {rich_escape(result.b.name)} (B)",
        caption="samples/s: median over the steady-state epoch windows of all seeds; interval: "
        "two-level bootstrap of B/A (seeds, then their windows); p: two-sided Mann-Whitney U "
        "on per-seed medians; accuracy: mean over seeds",
    )
    for i, column in enumerate(frame.columns):
        table.add_column(column, justify="left" if i == 0 else "right", overflow="fold")
    for row, change in zip(frame.itertuples(index=False), result.changes, strict=True):
        style = STYLES.get(change.verdict, "dim")
        # Cells are data (variant paths, error text): escape rich's [markup].
        table.add_row(*(rich_escape(str(v)) for v in row), style=style)
    # Piped output (CI logs) gets a wide table instead of rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    for note in result.notes:
        console.print(f"note: {rich_escape(note)}")
    console.print(rich_escape(resolution_text(result)))
    colour = "red" if result.regressions else "green"
    console.print(f"[{colour}]{rich_escape(_headline(result))}[/{colour}]")


def write_html(result: Comparison, path: Path) -> Path:
    from harness.report import html

    body = [
        f"<p><b>A</b> = {escape(str(result.a.path))} &nbsp; <b>B</b> = "
        f"{escape(str(result.b.path))}</p>",
        f'<ul class="verdict"><li>{escape(_headline(result))}</li>',
        *(f"<li>{escape(n)}</li>" for n in result.notes),
        f"<li>{escape(resolution_text(result))}</li>",
        "</ul>",
        html.table(changes_frame(result), "compare", bad=("slower",)),
        "<p>B/A is the ratio of median samples/s over the steady-state epoch windows of all "
        "seeds (below 1: B is slower); its interval comes from a two-level bootstrap (seeds, "
        "then each seed's windows), since a seed's windows share its process' state. slower: "
        "the whole interval lies below 1 - threshold and beyond the A/A resolution; not "
        "resolved: it holds 1 or a difference within the resolution. p comes from a two-sided "
        "Mann-Whitney U test on per-seed medians.</p>",
        "<h2>Commands</h2>",
        f"<pre>{escape(str(result.a.manifest.get('command', '')))}</pre>",
        f"<pre>{escape(str(result.b.manifest.get('command', '')))}</pre>",
    ]
    path = Path(path)
    if path.parent != Path("."):
        path.parent.mkdir(parents=True, exist_ok=True)
    title = f"mlpbench compare: {result.a.name} → {result.b.name}"
    path.write_text(html.document(title, body), encoding="utf-8")
    return path
