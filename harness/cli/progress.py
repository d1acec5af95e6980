"""What `mlpbench run` shows while it works and when it ends (rich): a live line per running
worker (variant, seed, epoch, loss), a line per finished run, then the summary table and the
verdict.

Progress goes to stderr and the table to stdout, so `mlpbench run > table.txt` keeps only the
result. The live display refreshes twice a second: the runner shares the CPU with the run it
is timing and must stay quiet.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import variants
from harness.cli.errors import PROG
from harness.results import storage
from harness.run.record import RunRecord
from harness.run.suite import Suite

STATUS_STYLE = {
    "ok": "green", "diverged": "yellow", "timeout": "red", "failed": "red", "inexpressible": "cyan"
}  # fmt: skip


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    return format(value, fmt)


def make_console(stderr: bool = False) -> Console:
    """A console that, when writing to a file or pipe, is wide enough for the tables instead
    of rich's 80 columns."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=160)


class RichProgress:
    """The runner's Listener, drawn with rich."""

    def __init__(self, epochs: int, console: Console | None = None) -> None:
        self.console = console or make_console(stderr=True)
        self.epochs = epochs
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=2,
            transient=True,
        )
        self.tasks: dict[tuple[str, int], Any] = {}
        self.overall: Any = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def suite_started(self, total: int, already_done: int) -> None:
        if already_done:
            self.console.print(f"resuming: {already_done} of {total} runs already done")
        self.overall = self.progress.add_task("runs", total=total, completed=already_done)

    def run_started(self, record: RunRecord) -> None:
        label = f"  {escape(record.variant)} seed {record.seed}: starting"
        self.tasks[record.key] = self.progress.add_task(label, total=self.epochs)

    def epoch_finished(self, record: RunRecord, epoch: int, loss: float, acc: float) -> None:
        label = (
            f"  {escape(record.variant)} seed {record.seed}: epoch {epoch}/{self.epochs} "
            f"loss {loss:.4f} acc {acc:.3f}"
        )
        self.progress.update(self.tasks[record.key], description=label, completed=epoch)

    def run_finished(self, record: RunRecord, summary: dict[str, Any]) -> None:
        self.progress.remove_task(self.tasks.pop(record.key))
        self.progress.advance(self.overall)
        style = STATUS_STYLE.get(record.status, "")
        head = f"[{style}]{record.status:<8}[/] {escape(record.variant)} seed {record.seed}"
        if record.status == "ok":
            detail = (
                f"acc {_num(summary.get('test_accuracy'), '.3f')}  "
                f"{_num(summary.get('samples_per_second'), ',.0f')} samples/s  "
                f"first step {_num(record.first_step_seconds, '.2f')} s"
            )
            underused = summary.get("underused_windows")
            if underused and not pd.isna(underused):  # left out of its samples/s
                detail += f"  [yellow]{int(underused)} window(s) underused[/]"
            slowed = summary.get("slowed_windows")
            if slowed and not pd.isna(slowed):  # left out of its samples/s as well
                detail += f"  [yellow]{int(slowed)} window(s) slowed[/]"
        else:
            detail = escape(record.error or "")
        line = f"{head}  {detail}  ({record.wall_seconds:.1f} s)"
        self.console.print(line, highlight=False, soft_wrap=True)

    def note(self, message: str) -> None:
        self.console.print(f"[dim]{escape(message)}[/]")


def _spread(values: pd.Series) -> str:
    """Median, and half the range as a percentage of it: single runs vary by tens of %."""
    values = values.dropna().astype(float)
    if values.empty:
        return "-"
    median = float(values.median())
    text = f"{median:,.0f}"
    if len(values) > 1 and median > 0:
        text += f" ±{50 * (values.max() - values.min()) / median:.0f}%"
    return text


def summary_table(summary: pd.DataFrame, title: str = "") -> Table:
    """One row per variant: medians over its seeds; failures are counted, not hidden."""
    # names, paths and errors are data: rich must not read their [brackets] as markup
    table = Table(title=escape(title) or None, title_justify="left")
    table.add_column("variant", no_wrap=True)
    for name in ("ok/runs", "test acc", "samples/s", "first step s", "peak MB"):
        table.add_column(name, justify="right")
    table.add_column("parity max|Δ|", justify="right", no_wrap=True)
    table.add_column("LOC", justify="right")
    any_problem = bool((summary["status"] != "ok").any())
    if any_problem:
        table.add_column("problem")
    for variant, rows in summary.groupby("variant", sort=False):
        ok = rows[rows["status"] == "ok"]
        parity = rows["parity_max_abs_diff"].dropna().astype(float)
        passed = rows["parity_pass"].dropna()
        learned = rows["learning_pass"].dropna()
        parity_text = "-"
        if not parity.empty:
            if bool(passed.all()) and len(passed):
                mark = "[green]✓[/]"
            elif bool(learned.all()) and len(learned):
                mark = "[yellow]≈[/]"  # parted late, within the reference's seed band
            else:
                mark = "[red]✗[/]"
            parity_text = f"{parity.max():.1e} {mark}"
        problems = rows[rows["status"] != "ok"]
        problem = ""
        if not problems.empty:
            first = problems.iloc[0]
            error = first["error"] if pd.notna(first["error"]) else ""
            problem = escape(f"{first['status']}: {error}")
        cells = [
            escape(str(variant)),
            f"{len(ok)}/{len(rows)}",
            _num(ok["test_accuracy"].median() if len(ok) else None, ".3f"),
            _spread(ok["samples_per_second"]),
            _num(ok["first_step_seconds"].median() if len(ok) else None, ".2f"),
            _num(ok["peak_rss_mb"].median() if len(ok) else None, ".0f"),
            parity_text,
            _num(int(rows["loc"].dropna().iloc[0]) if rows["loc"].notna().any() else None, "d"),
        ]
        table.add_row(*cells, *([problem] if any_problem else []))
    return table


def print_end(suite: Suite, code: int, resume_out: Path) -> None:
    """After a suite: the table of its runs on stdout; on stderr, the verdict and the learning
    claims, or, if it was interrupted, how to finish it (`resume_out`: the folder to resume)."""
    finished = [r for r in suite.records if r.status != "pending"]
    if finished:
        summary = suite.summary()
        table = summary_table(summary[summary["status"] != "pending"], title=str(suite.config.out))
        make_console().print(table)
    err = make_console(stderr=True)
    lines = _resume_hint(suite, len(finished), resume_out) if code == 130 else _verdict(suite)
    for line in lines:
        err.print(line, highlight=False, markup=False)


def _resume_hint(suite: Suite, finished: int, resume_out: Path) -> list[str]:
    config = suite.config
    argv = [a for a in config.argv if a not in ("--force",)]
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv += ["--out", str(resume_out)]
    return [
        f"interrupted: {finished} of {len(suite.records)} runs kept in {config.out}; "
        f"finish with: {shlex.join([*argv, '--resume'] if '--resume' not in argv else argv)}"
    ]


def _verdict(suite: Suite) -> list[str]:
    """How many runs were ok and passed parity, then each learning claim's answer."""
    config, records = suite.config, suite.records
    bad = [r for r in records if r.status not in storage.NOT_FAILED]
    summary = suite.summary()
    parity = summary["learning_pass"].eq(False).sum()
    rounding = (summary["parity_pass"].eq(False) & summary["learning_pass"].eq(True)).sum()
    unable = sorted({r.variant for r in records if r.status == "inexpressible"})
    ok = sum(r.status == "ok" for r in records)
    verdict = f"{ok} of {len(records)} runs ok"
    if unable:
        verdict += f", {', '.join(unable)} cannot express the model"
    if bad:
        verdict += ", " + ", ".join(f"{r.variant} seed {r.seed}: {r.status}" for r in bad[:5])
    if parity:
        verdict += f"; {parity} failed the parity check against {variants.REFERENCE}"
    if rounding:
        verdict += (
            f"; {rounding} parted from {variants.REFERENCE} late but stayed within its seed "
            "band (amplified float32 rounding, not a failure)"
        )
    lines = [f"{verdict}. Results: {config.out}"]
    answer = {True: "supported", False: "not supported", None: "cannot be answered"}
    for claim in (suite.manifest.get("learning") or {}).get("claims", []):
        p, delta = claim.get("p_value", math.nan), claim.get("cliffs_delta", math.nan)
        lines.append(
            f"claim '{claim['claim']}': {answer[claim.get('supported')]}"
            + (
                f" ({claim['a']} vs {claim['b']}, p = {p:.2g}, Cliff's δ = {delta:+.2f})"
                if claim.get("supported") is not None
                else f" ({claim.get('reason')})"
            )
            + f"; why: {PROG} report {config.out}"
        )
    return lines
