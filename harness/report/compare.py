"""`mlpbench compare A B`: per variant, how B differs from the baseline A.

Throughput is compared over its repeats, never as one pair of numbers: the steady-state epoch
windows of every seed of A against those of B, a two-sided Mann-Whitney U test and the ratio
of medians. A variant regressed when B is slower than A by more than the threshold AND the
test is significant; that is what makes the command exit non-zero in CI.
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
from harness.report.data import ReportData, combine, format_number, throughput_by_label
from harness.results.reader import ResultsError, ResultSet, read_results

# Environment keys worth pointing out when they differ: what a comparison is usually about.
ENVIRONMENT_KEYS = ("tensorflow", "keras", "numpy", "python", "cpu_model", "gpus", "hostname")
# Settings that change what is measured: a comparison across them is not like for like.
CONFIG_KEYS = ("device", "dataset", "epochs", "batch_size", "hidden", "optimizer", "jobs", "dtype")
CONFIG_DEFAULTS = {"dtype": "float32"}  # not stored in the manifest when it is the default


@dataclass(frozen=True)
class VariantChange:
    variant: str
    runs_a: str  # "ok/total", or "" when the variant is absent
    runs_b: str
    throughput: stats.ShiftResult
    accuracy_a: stats.MeanCI
    accuracy_b: stats.MeanCI
    first_step: stats.ShiftResult
    verdict: (
        str  # slower | faster | unchanged | only in A | only in B | none finished in B | no data
    )

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
    ta, tb = throughput_by_label(da), throughput_by_label(db)
    variants = list(da.labels) + [v for v in db.labels if v not in da.labels]
    changes = []
    for v in variants:
        shift = stats.compare_samples(ta.get(v, []), tb.get(v, []))
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
                verdict=_verdict(v, da, db, shift, threshold, alpha),
            )
        )
    if not any(c.verdict in JUDGED for c in changes):
        raise ResultsError(_nothing_compared(a, b, changes))
    return Comparison(a, b, threshold, alpha, tuple(changes), tuple(_notes(a, b)))


# The verdicts a comparison was made for; a gate that judged none of its variants has not
# shown that nothing is slower.
JUDGED = ("slower", "faster", "unchanged", "none finished in B")


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
    shift: stats.ShiftResult,
    threshold: float,
    alpha: float,
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
    if shift.test.significant(alpha) and shift.ratio < 1 - threshold:
        return "slower"
    if shift.test.significant(alpha) and shift.ratio > 1 + threshold:
        return "faster"
    return "unchanged"


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
    for c in result.changes:
        t, f = c.throughput, c.first_step
        rows.append(
            {
                "variant": c.variant,
                "runs A | B": f"{c.runs_a or '–'} | {c.runs_b or '–'}",
                "A samples/s": format_number(t.a.median),
                "B samples/s": format_number(t.b.median),
                "B/A": _ratio(t.ratio),
                "p": _p(t.test),
                "accuracy A → B": _accuracy(c.accuracy_a, c.accuracy_b),
                "first step A → B": _first_step(f),
                "verdict": c.verdict,
            }
        )
    return pd.DataFrame(rows)


def _ratio(r: float) -> str:
    return f"{r:.2f}×" if math.isfinite(r) else ""


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
    pct = (
        f"{result.threshold:.0%}" if result.threshold * 100 % 1 == 0 else f"{result.threshold:.1%}"
    )
    lost = [c.variant for c in result.regressions if c.verdict != "slower"]
    slower = [c.variant for c in result.regressions if c.verdict == "slower"]
    parts = []
    if slower:
        parts.append(
            f"{len(slower)} variant(s) slower by more than {pct} with p < {result.alpha:g}: "
            + ", ".join(slower)
        )
    if lost:
        parts.append(f"{len(lost)} variant(s) with no finished run in B: {', '.join(lost)}")
    if not parts:
        parts.append(f"no variant is slower by more than {pct} with p < {result.alpha:g}")
    if unjudged := [c.variant for c in result.changes if c.verdict == "no data"]:
        parts.append(f"not compared, no quiet finished run in A or B: {', '.join(unjudged)}")
    return "; ".join(parts)


STYLES = {
    "slower": "bold red",
    "none finished in B": "bold red",
    "faster": "bold green",
    "unchanged": "",
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
        caption="samples/s: median over the steady-state epoch windows of all seeds; p: "
        "two-sided Mann-Whitney U on those windows; accuracy: mean over seeds",
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
    colour = "red" if result.regressions else "green"
    console.print(f"[{colour}]{rich_escape(_headline(result))}[/{colour}]")


def write_html(result: Comparison, path: Path) -> Path:
    from harness.report import html

    body = [
        f"<p><b>A</b> = {escape(str(result.a.path))} &nbsp; <b>B</b> = "
        f"{escape(str(result.b.path))}</p>",
        f'<ul class="verdict"><li>{escape(_headline(result))}</li>',
        *(f"<li>{escape(n)}</li>" for n in result.notes),
        "</ul>",
        html.table(changes_frame(result), "compare", bad=("slower",)),
        "<p>B/A is the ratio of median samples/s (below 1: B is slower); p comes from a "
        "two-sided Mann-Whitney U test over the steady-state epoch windows of all seeds.</p>",
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
