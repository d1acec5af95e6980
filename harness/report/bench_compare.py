"""The CI performance gate: is NEW slower than BASE?

Interleaved, one file (what `.ci/bench` writes): every benchmark timed the baseline commit's
code and this tree's in alternate rounds of one process (`extra_info["base_seconds"]`, the
baseline's round right before each of this tree's). The two codes share the process, its
thread pools and the machine's moments, so a difference between their rounds is the code's.
A benchmark is slower when the lower quartile of its rounds is above that of the baseline's
rounds by more than the threshold (default 10 %) and a one-sided Mann-Whitney U test says
NEW > BASE, p < alpha. The lower quartile, because some rounds of `tf.data` and of Keras `fit`
take a fixed 75 ms more than the others, a varying share of them (up to half) in each run,
while a slower step moves every round.

    python -m harness.report.bench_compare NEW.json [--threshold 10%] [--alpha 0.01]

Two files, BASE and NEW, each measured on its own (baselines kept per branch):
Raw times say little across runs on a shared machine, and nothing across machines. Every
training benchmark therefore also times, before each of its rounds and in the same process,
a reference: the same steps' matrix products in the variant's own framework (NumPy's BLAS or
TensorFlow's graph; `extra_info["reference"]`, `["reference_seconds"]`). A file's machine speed
is the median of all its references of a framework; a round's time over it is the variant's
cost in units of this machine's GEMM speed, which a faster CPU moves far less than the time.
The session-wide median, not the round's own reference: a slowdown of one variant (a busy
loop, a stalled thread pool) can disturb the reference beside it, never that of the session.

A benchmark is slower when both hold:
- the lower quartile of its normalised times grew by more than the threshold (default 15 %):
  an effect worth failing on. The lower quartile, not the median: some rounds of Keras `fit`
  take 1.7x the others, a few per run at random, which moves a median of 20 rounds between
  runs, while a slowdown of the step itself moves every round;
- a one-sided Mann-Whitney U test of the normalised round times says NEW > BASE, p < alpha.
The change is printed with a 95 % bootstrap interval. Benchmarks without a reference (older
files, GEMM rows) are compared on raw round times, with the same rule.

    python -m harness.report.bench_compare BASE.json NEW.json [--threshold 15%] [--alpha 0.01]

Across processes a variant moves by 10-40 % on a 2-core machine (tests/benchmarks/README.md),
more than within one; the interleaved form is the gate's, two files are for what cannot run in
one process.

Exit status: 0 no benchmark slower, 1 some benchmark slower, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy import stats as scipy_stats

from harness.measure import stats

THRESHOLD = 0.15  # two files, measured in two processes: those alone move a variant 10-40 %
INTERLEAVED_THRESHOLD = 0.10  # unchanged code read 0.945-1.047 (tests/benchmarks/README.md)
ALPHA = 0.01
QUANTILE = 0.25


class InputError(Exception):
    """A file or an option the gate cannot use; the message says why and what to do."""


@dataclass(frozen=True)
class Verdict:
    name: str
    # "/ numpy GEMMs", "/ tensorflow GEMMs" (normalised), "time", or "interleaved"
    measure: str
    change: stats.RatioCI  # lower quartile of NEW / that of BASE, of the measure
    p_value: float
    verdict: str  # "slower", "faster", "same"


def probability(text: str) -> float:
    """A significance level: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def machine_speed(benchmarks: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Seconds of the reference chain per framework: the median over every benchmark's own."""
    per_kind: dict[str, list[float]] = {}
    for b in benchmarks.values():
        info = b.get("extra_info") or {}
        if info.get("reference") and info.get("reference_seconds"):
            per_kind.setdefault(info["reference"], []).append(
                float(np.median(info["reference_seconds"]))
            )
    return {kind: float(np.median(values)) for kind, values in per_kind.items()}


def samples(benchmark: dict[str, Any], speed: dict[str, float]) -> tuple[str, list[float]]:
    times = [float(t) for t in (benchmark.get("stats") or {}).get("data") or []]
    kind = (benchmark.get("extra_info") or {}).get("reference")
    if kind in speed:
        return f"/ {kind} GEMMs", [t / speed[kind] for t in times]
    return "time", times


def load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give the JSON of a --benchmark-json run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a pytest-benchmark JSON file ({exc})") from None
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list) or not all(isinstance(b, dict) for b in benchmarks):
        raise InputError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    named = {str(b.get("name") or b.get("fullname")): b for b in benchmarks}
    for name, b in named.items():
        stats_ = b.get("stats")
        _check_timings(path, name, "stats.data", stats_.get("data") if stats_ else None)
        info = b.get("extra_info") or {}
        for key in ("base_seconds", "reference_seconds"):
            if info.get(key) is not None:
                _check_timings(path, name, f"extra_info.{key}", info[key])
    return named


def _check_timings(path: Path, name: str, where: str, values: Any) -> None:
    """Round times must be a non-empty list of positive seconds: judged on none (an empty
    list, NaN, text), a gate would call the benchmark "same" and pass on no data."""
    found = json.dumps(values)
    if isinstance(values, list) and values:
        bad = [t for t in values if not _positive_seconds(t)]
        if not bad:
            return
        found = f"a list holding {json.dumps(bad[0])}"
    found = found if len(found) <= 40 else found[:37] + "..."
    raise InputError(
        f"{path}: benchmark {name} has no valid timings ({where} is {found}, expected a list "
        "of positive seconds); run the benchmarks again to write this file"
    )


def _positive_seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def judge(
    name: str,
    base: tuple[dict[str, Any], dict[str, float]],
    new: tuple[dict[str, Any], dict[str, float]],
    threshold: float,
    alpha: float,
) -> Verdict:
    """`base` and `new`: the benchmark and its file's machine speed."""
    base_kind, a = samples(*base)
    new_kind, b = samples(*new)
    if base_kind != new_kind:  # one file predates the reference: compare raw times
        (base_kind, a), (_, b) = samples(base[0], {}), samples(new[0], {})
    return shift(name, base_kind, a, b, threshold, alpha)


def shift(
    name: str, measure: str, a: list[float], b: list[float], threshold: float, alpha: float
) -> Verdict:
    """Is B (this tree's rounds) slower than A (the baseline's)? Lower quartiles' ratio and a
    one-sided Mann-Whitney U test each way."""
    change = stats.ratio_of_medians(a, b, quantile=QUANTILE)
    if min(len(a), len(b)) < 3 or not math.isfinite(change.ratio):
        return Verdict(name, measure, change, math.nan, "same")
    p_slower = float(scipy_stats.mannwhitneyu(b, a, alternative="greater").pvalue)
    p_faster = float(scipy_stats.mannwhitneyu(b, a, alternative="less").pvalue)
    if change.ratio > 1 + threshold and p_slower < alpha:
        return Verdict(name, measure, change, p_slower, "slower")
    if change.ratio < 1 / (1 + threshold) and p_faster < alpha:
        return Verdict(name, measure, change, p_faster, "faster")
    return Verdict(name, measure, change, min(p_slower, p_faster), "same")


def judge_interleaved(
    name: str, benchmark: dict[str, Any], threshold: float, alpha: float
) -> Verdict:
    """This tree's rounds against the baseline's, timed in alternate rounds of one process."""
    new = [float(t) for t in (benchmark.get("stats") or {}).get("data") or []]
    base = [float(t) for t in benchmark["extra_info"]["base_seconds"]]
    return shift(name, "interleaved", base, new, threshold, alpha)


def compare_interleaved(
    path: Path, threshold: float = INTERLEAVED_THRESHOLD, alpha: float = ALPHA
) -> list[Verdict]:
    """The benchmarks of one file that ran the baseline's code beside their own."""
    benchmarks = load(path)
    paired = {
        name: b
        for name, b in benchmarks.items()
        if isinstance((b.get("extra_info") or {}).get("base_seconds"), list)
    }
    if not paired:
        raise InputError(
            f"{path} holds no interleaved baseline (extra_info base_seconds): give BASE and NEW "
            "files, or run the benchmarks with MLPBENCH_BENCH_BASE=<baseline tree>"
        )
    return [judge_interleaved(name, b, threshold, alpha) for name, b in paired.items()]


def compare(
    base: Path, new: Path, threshold: float = THRESHOLD, alpha: float = ALPHA
) -> list[Verdict]:
    old, now = load(base), load(new)
    common = [name for name in now if name in old]
    if not common:
        raise InputError(
            f"{base} and {new} share no benchmark: run the same benchmarks (same mode) for both"
        )
    old_speed, now_speed = machine_speed(old), machine_speed(now)
    return [
        judge(name, (old[name], old_speed), (now[name], now_speed), threshold, alpha)
        for name in common
    ]


def print_table(verdicts: list[Verdict], threshold: float, alpha: float, console: Console) -> None:
    table = Table(title=f"NEW against BASE: slower when > +{threshold:.0%} and p < {alpha:g}")
    for column in ("benchmark", "measure", "NEW / BASE (q1)", "95 % CI", "p", "verdict"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    colour = {"slower": "red", "faster": "green", "same": ""}
    for v in verdicts:
        c = v.change
        table.add_row(
            escape(v.name),
            v.measure,
            f"{c.ratio:.3f}",
            f"{c.low:.3f}-{c.high:.3f}",
            "" if math.isnan(v.p_value) else f"{v.p_value:.2g}",
            f"[{colour[v.verdict]}]{v.verdict}[/]" if colour[v.verdict] else v.verdict,
        )
    console.print(table)


def percentage(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage like 15%") from None
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"must be between 0% and 1000%, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(
    argv: list[str] | None = None, prog: str = "python -m harness.report.bench_compare"
) -> int:
    parser = _Parser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "files",
        type=Path,
        nargs="+",
        metavar="[BASE] NEW",
        help="NEW alone: the JSON of an interleaved run (MLPBENCH_BENCH_BASE), judged pair by "
        "pair; BASE NEW: the baseline's pytest-benchmark JSON and the one to judge",
    )
    parser.add_argument(
        "--threshold",
        type=percentage,
        metavar="PCT",
        help=f"smallest slowdown that fails; default: {INTERLEAVED_THRESHOLD * 100:.0f}%% for one "
        f"interleaved file, {THRESHOLD * 100:.0f}%% for two files",
    )
    parser.add_argument(
        "--slower-to",
        type=Path,
        metavar="FILE",
        help="also write the names of the slower benchmarks to FILE, one per line (for a "
        "confirmation run of just those)",
    )
    parser.add_argument(
        "--alpha",
        type=probability,
        default=ALPHA,
        metavar="P",
        help=f"significance level of the test; default: {ALPHA:g}",
    )
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    if len(args.files) > 2:
        parser.error("give NEW, or BASE and NEW: two files at most")
    try:
        if len(args.files) == 1:
            threshold = args.threshold or INTERLEAVED_THRESHOLD
            verdicts = compare_interleaved(args.files[0], threshold, args.alpha)
        else:
            threshold = args.threshold or THRESHOLD
            verdicts = compare(*args.files, threshold, args.alpha)
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print_table(verdicts, threshold, args.alpha, console)
    slower = [v.name for v in verdicts if v.verdict == "slower"]
    if args.slower_to:
        args.slower_to.write_text("".join(f"{name}\n" for name in slower))
    if slower:
        console.print(f"{len(slower)} slower: {escape(', '.join(slower))}", style="red")
        return 1
    console.print(f"none of {len(verdicts)} benchmarks is slower")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
