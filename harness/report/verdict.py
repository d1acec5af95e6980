"""The verdict: a few sentences generated from the numbers, answering what a reader asks
first. Do the API levels learn the same? Which is fastest, by what ratio? What does the
first step cost? For a batch-size sweep: which level gains most from larger batches, how the
gap between the fastest and the slowest changes, how close each gets to the GEMM roofline.
Sentences are plain text; the page escapes them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from harness.measure import stats
from harness.measure.anatomy import LABELS as PART_LABELS
from harness.report import task
from harness.report.data import (
    REPEATABLE_BAND,
    ReportData,
    SweepData,
    anatomy_table,
    costliest_part,
    format_number,
    ladder,
    noisy_runs,
    parity_was_run,
    repeatability,
    resolution,
    slowed_windows,
    startup_breakdown,
    throughput_by_process,
    underused_windows,
)
from harness.report.learning import as_written
from harness.report.learning import findings as learning_findings

# a variant whose steady windows lie within REPEATABLE_BAND of its median this often is repeatable
REPEATABLE_SHARE = 0.95


@dataclass(frozen=True)
class Finding:
    topic: str
    sentence: str


def verdict(data: ReportData) -> list[Finding]:
    if data.ok.empty:  # a suite that just started, or where everything failed
        return [_runs(data)]
    findings = [_runs(data), _noise(data)]
    # as written, no two levels take the same steps: learning is judged by statistics instead
    if len(as_written(data.sets)) < len(data.sets):
        findings += [_parity(data), _accuracy(data)]
    findings += [Finding(topic, text) for topic, text in learning_findings(data.sets)]
    findings += [Finding(topic, text) for topic, text in task.findings(data)]
    findings += [_speed(data), _control(data), _repeatability(data), _ladder(data)]
    findings += [_anatomy(data), _first_step(data), _target(data), _overhead(data)]
    return [f for f in findings if f is not None]


def _overhead(data: ReportData) -> Finding | None:
    """The harness' own cost, as each suite measured it (results/README.md, `overhead`)."""
    parts = []
    for s in data.sets:
        o = s.manifest.get("overhead") or {}
        if o.get("ratio_median"):
            q = o.get("ratio_spread") or {}
            where = f" ({s.name})" if len(data.sets) > 1 else ""
            parts.append(
                f"{o['ratio_median']:.3f}{where}, quartiles {q.get('q1', float('nan')):.3f}"
                f"-{q.get('q3', float('nan')):.3f} over {o.get('rounds')} pairs"
            )
    each = data.summary.dropna(subset=["harness_overhead"]).groupby("variant")
    ratios = each["harness_overhead"].median().sort_values()
    if not parts and ratios.empty:
        return None
    text = (
        f"Throughput of {data.reference} as the harness measures it over its bare training loop, "
        f"in the same process: {'; '.join(parts)} (1 means the harness costs nothing "
        "measurable; the target is within 2 %)."
        if parts
        else ""
    )
    if not ratios.empty:
        below = ratios[ratios < 0.98]
        text += (
            f" Every variant measured the same way on the suite's data (--overhead all): "
            f"{ratios.iloc[0]:.3f} ({ratios.index[0]}) to {ratios.iloc[-1]:.3f} "
            f"({ratios.index[-1]}); "
            + (
                f"below 0.98: {', '.join(f'{v} {r:.3f}' for v, r in below.items())}."
                if len(below)
                else "all at 0.98 or above."
            )
        )
    return Finding("Harness", text.strip())


def _runs(data: ReportData) -> Finding:
    s = data.summary
    failed = s[~s["status"].isin(["ok", "pending"])]
    pending = int((s["status"] == "pending").sum())
    text = (
        f"{len(s)} runs: {len(data.labels)} variants × {s['seed'].nunique()} seeds; "
        f"{int((s['status'] == 'ok').sum())} finished"
    )
    if pending:
        text += f", {pending} not run yet"
    if failed.empty:
        return Finding("Runs", text + ", none failed.")
    # Every failure by name with its reason (seeds that failed alike share one entry): a
    # reader must not have to dig for them.
    reasons = failed.assign(reason=[_reason(r.status, r.error) for r in failed.itertuples()])
    listed = "; ".join(
        f"{label} seed{'s' if len(g) > 1 else ''} {', '.join(map(str, g['seed']))}: {reason}"
        for (label, reason), g in reasons.groupby(["label", "reason"], sort=False)
    )
    return Finding("Runs", f"{text}, {len(failed)} did not: {listed}.")


def _noise(data: ReportData) -> Finding | None:
    """Runs whose timing outside load disturbed, windows in which a worker left cores idle,
    and suites whose runs shared the CPU."""
    parts = []
    noisy = noisy_runs(data)
    if not noisy.empty:
        listed = ", ".join(
            f"{r.label} seed {r.seed} ({r.foreign_cpu:.2f} cores)" for r in noisy.itertuples()
        )
        parts.append(
            f"{len(noisy)} run(s) ran while other processes used the CPU and are left out of "
            f"every speed claim: {listed}; measure them again with --retry-noisy"
        )
    underused = underused_windows(data)
    if not underused.empty:
        listed = "; ".join(
            f"{label} seed {seed} epoch{'s' if len(g) > 1 else ''} "
            f"{', '.join(map(str, g['epoch']))} ({_cores(g['cores'])} of "
            f"{g['busiest'].iloc[0]:.2f} cores)"
            for (label, seed), g in underused.groupby(["label", "seed"], sort=False)
        )
        parts.append(
            f"{len(underused)} window(s) left cores idle that their variant used in its other "
            f"windows, while the machine had them free (underused: a slow mode inside the "
            f"process, not outside load), and are left out of every speed claim: {listed}"
        )
    slowed = slowed_windows(data)
    if not slowed.empty:
        listed = "; ".join(
            f"{label} seed {seed} epoch{'s' if len(g) > 1 else ''} "
            f"{', '.join(map(str, g['epoch']))} ({_costs(g['cost'])} the CPU time per sample)"
            for (label, seed), g in slowed.groupby(["label", "seed"], sort=False)
        )
        parts.append(
            f"{len(slowed)} window(s) kept their cores busy but spent more CPU time on each "
            f"sample than their variant's median window, and ran slower for it (slowed: the "
            f"CPU itself ran slower, as a virtual CPU whose host runs it at two speeds does), and "
            f"are left out of every speed claim: {listed}"
        )
    contended = data.ok[data.ok["contended"].eq(True)]
    if not contended.empty:
        parts.append(
            f"{contended['label'].nunique()} variant(s) ran with --jobs above 1: their runs "
            "shared the CPU with each other, so their speeds are not comparable"
        )
    return Finding("Noise", "; ".join(parts) + ".") if parts else None


def _cores(values: pd.Series) -> str:
    low, high = float(values.min()), float(values.max())
    return f"{low:.2f}" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}"


def _ladder(data: ReportData) -> Finding | None:
    """Per level: its fastest form, and what each convenience below it costs; a step whose
    interval holds 1 or a difference within the A/A resolution is said to be not resolved."""
    aa = resolution(data)
    table = ladder(data, aa)
    samples = throughput_by_process(data)
    sentences = []
    for level, rungs in table.groupby("level", sort=False):
        if len(rungs) < 2:
            continue
        fastest = rungs.loc[rungs["samples/s (median)"].idxmax()]
        base = rungs.iloc[0]
        steps = ", ".join(
            f"{r['variant']} {r['speed-up']:.2f}× ({r['95% CI'] or 'no interval'}"
            + ("" if r["resolved"] == "resolved" else f"; {r['resolved']}")
            + ")"
            for _, r in rungs.iloc[1:].iterrows()
        )
        if fastest["variant"] == base["variant"]:
            head = f"{level}: no rung is faster than its tutorial form {base['variant']}"
        else:
            whole = stats.speed_ratio(
                samples[base["variant"]], samples[fastest["variant"]], aa.value
            )
            head = (
                f"{level}: fastest as {fastest['variant']} at "
                f"{format_number(fastest['samples/s (median)'])} samples/s, "
                + _ratio_text(whole, "its tutorial form " + str(base["variant"]))
            )
            if not whole.resolved:
                head += f", not resolved ({_why_not(whole)})"
        sentences.append(f"{head}; rung by rung: {steps}")
    if not sentences:
        return None
    return Finding("Cost ladder", "; ".join(sentences) + ".")


def _anatomy(data: ReportData) -> Finding | None:
    """Per level and batch size: of its fastest profiled form, the part of the step that costs
    the most over its floor (anatomy.csv against the manifest's calibration)."""
    sentences = []
    for s in data.sets:
        table = anatomy_table(s)
        if table.empty:
            continue
        where = f" ({s.name})" if len(data.sets) > 1 else ""
        for (level, batch), rows in table.groupby(["level", "batch_size"], sort=False):
            # by its speed without the profiler, which slows some forms more than others
            speed = rows["unprofiled_step_seconds"].fillna(rows["step_seconds"])
            fastest = rows.loc[speed.idxmin()]
            found = costliest_part(fastest)
            step = f"{fastest['step_seconds'] * 1e3:.3g} ms per step profiled"
            if not pd.isna(fastest["unprofiled_step_seconds"]):
                step += f" ({fastest['unprofiled_step_seconds'] * 1e3:.3g} ms unprofiled)"
            if found is None:
                sentences.append(
                    f"{level}{where}, batch {batch}: {fastest['variant']} takes {step} "
                    "(no calibration: no floor to hold it against)"
                )
                continue
            part, over = found
            floor = sum(float(fastest[f"floor_{p}"]) for p in ("gemm", "optimizer", "other_math"))
            sentences.append(
                f"{level}{where}, batch {batch}: {fastest['variant']} takes {step} "
                f"against a floor of {floor * 1e3:.3g} ms; its costliest part over its "
                f"floor is {PART_LABELS[part]}, {over * 1e3:.3g} ms per step over "
                f"(parts measured: {fastest['coverage']:.0%} of the step)"
            )
    if not sentences:
        return None
    return Finding("Step anatomy", "; ".join(sentences) + ".")


def _parity(data: ReportData) -> Finding:
    if not parity_was_run(data):
        return Finding(
            "Parity",
            "Parity was not run, so whether the levels compute the same steps is untested "
            f"here (a parity run compares every step's loss with {data.reference}).",
        )
    s = data.ok[data.ok["variant"] != data.reference].dropna(subset=["parity_max_abs_diff"])
    if s.empty:
        return Finding(
            "Parity",
            f"Parity was run, but no finished run besides {data.reference} has a parity result: "
            "nothing to compare.",
        )
    worst = s.groupby("label", sort=False)["parity_max_abs_diff"].max()
    tolerance = data.parity_tolerance  # as the manifests store it: float32's or float64's
    failing = worst[worst >= tolerance]
    passing = worst[worst < tolerance]
    parts = []
    if len(passing):
        parts.append(
            f"{len(passing)} of {len(worst)} variants matched {data.reference} within "
            f"{tolerance:g} at every step (largest |Δloss| "
            f"{passing.max():.2g}, {passing.idxmax()})"
        )
    if len(failing):
        within = s.groupby("label", sort=False)["parity_steps_within"].min()
        listed = ", ".join(
            f"{lab} (max |Δloss| {v:.2g}, identical for the first {_steps(within.get(lab))})"
            for lab, v in failing.items()
        )
        parts.append(f"{len(failing)} did not: {listed}")
    # past the identical steps, each run is judged against the reference's seed band
    band = s.groupby("label", sort=False)["learning_pass"].agg(lambda v: bool(v.dropna().all()))
    gap = s.groupby("label", sort=False)["seed_band_gap"].max()
    differ = [lab for lab in failing.index if not band.get(lab, False) or pd.isna(gap.get(lab))]
    rounding = [lab for lab in failing.index if lab not in differ]
    verdict = "they learn the same" if not differ else "they do not all learn the same"
    text = "; ".join(parts) + f": {verdict}."
    if rounding:
        text += (
            f" {', '.join(rounding)} parted late but stayed within the band {data.reference}'s "
            f"seeds span (largest gap {gap[rounding].max():.2f} of the band): float32 "
            "rounding amplified by training, as any two implementations part on a long run."
        )
    if differ:
        text += (
            f" {', '.join(differ)} left that band (or had no band to be judged by: one seed): "
            "a difference larger than changing the seed makes."
        )
    return Finding("Parity", text)


def _steps(n: object) -> str:
    return "? steps" if n is None or pd.isna(n) else f"{int(n)} steps"


def _accuracy(data: ReportData) -> Finding | None:
    ok = data.ok.dropna(subset=["test_accuracy"])
    if ok.empty:
        return None
    means = ok.groupby("label", sort=False)["test_accuracy"].mean()
    if len(means) == 1:
        return Finding(
            "Accuracy",
            f"Final test accuracy (mean over seeds) is {means.iloc[0]:.4f} for "
            f"{means.index[0]}, the only variant that finished: nothing to compare.",
        )
    span = (
        f"Final test accuracy (mean over seeds) ranges from {means.min():.4f} "
        f"({means.idxmin()}) to {means.max():.4f} ({means.idxmax()})"
    )
    per_seed = ok.groupby("block")["test_accuracy"]
    if ok["block"].nunique() and (per_seed.nunique() == 1).all():
        return Finding(
            "Accuracy",
            f"Every variant reached exactly the same final test accuracy in every seed "
            f"(mean {means.iloc[0]:.4f} over {ok['block'].nunique()} seeds): there is no "
            "difference to test.",
        )
    groups = {
        lab: dict(zip(g["block"], g["test_accuracy"], strict=True))
        for lab, g in ok.groupby("label", sort=False)
    }
    test = stats.compare_groups(groups)
    if not test.possible:
        return Finding(
            "Accuracy",
            f"{span}. No significance test is possible ({test.reason}); run more seeds "
            "to tell a real difference from seed noise.",
        )
    what = (
        f"{test.test} test across {len(groups)} variants "
        + (f"on {test.n} seeds shared by all" if test.test == "Friedman" else "over seeds")
        + f": statistic {test.statistic:.3g}, p = {test.p_value:.3g}"
    )
    if test.significant():
        conclusion = f"the differences are significant at α = {stats.ALPHA}"
    else:
        conclusion = f"the differences are not significant at α = {stats.ALPHA}"
    return Finding("Accuracy", f"{span}. {what}; {conclusion}.")


def _speed(data: ReportData) -> Finding | None:
    """Fastest against the next, and against the slowest, each judged over processes (a
    two-level bootstrap interval) and against the suite's A/A resolution: a difference the
    interval or the resolution cannot tell from none is "not resolved", never a ranking."""
    samples = throughput_by_process(data)
    if not samples:
        return None
    aa = resolution(data)
    med = {lab: stats.pooled_median(p) for lab, p in samples.items()}
    ranked = sorted(samples, key=lambda lab: -med[lab])
    best = ranked[0]
    control = f"A/A resolution {aa.describe()}"
    if len(ranked) == 1:
        return Finding(
            "Speed",
            f"{best}, the only variant with a throughput, trains "
            f"{format_number(med[best])} samples/s (median of {_processes(samples[best])}); "
            f"{control}.",
        )
    second, slowest = ranked[1], ranked[-1]
    step = stats.speed_ratio(samples[second], samples[best], aa.value)
    test = stats.process_test(samples[second], samples[best])
    shown = f"{test.test} on per-process medians p = {test.p_value:.2g}" if test.possible else (
        f"no test on per-process medians possible: {test.reason}"
    )  # fmt: skip
    if step.resolved:
        text = (
            f"{best} is fastest at {format_number(med[best])} samples/s (median), "
            f"{_ratio_text(step, f'the next, {second}')}"
        )
    else:
        text = (
            f"{best} and {second} are not resolved: {format_number(med[best])} against "
            f"{format_number(med[second])} samples/s (median), {_ratio_text(step)}, "
            f"{_why_not(step)}; neither is ranked above the other"
        )
    text += f" ({shown}; {_sides(step, second, best)})"
    if slowest != second:
        far = stats.speed_ratio(samples[slowest], samples[best], aa.value)
        text += f"; {best} is {_ratio_text(far, f'the slowest, {slowest}')}"
        if not far.resolved:
            text += f", not resolved either ({_why_not(far)})"
    return Finding("Speed", f"{text}. {control}: a smaller difference is not resolved.")


def _control(data: ReportData) -> Finding | None:
    """The A/A control on its own: per group of identical computations, how far apart their
    medians lie, each pair's interval by itself, and that no difference among them is ranked.
    A pair whose interval alone excludes 1 is named: the reason intervals alone do not decide."""
    aa = resolution(data)
    if not aa.measured:
        return None
    samples = throughput_by_process(data)
    sentences = []
    for group in aa.groups:
        pairs = [(a, b) for i, a in enumerate(group) for b in group[i + 1 :]]
        ratios = {(a, b): stats.speed_ratio(samples[a], samples[b]) for a, b in pairs}
        med = [stats.pooled_median(samples[lab]) for lab in group]
        apart = max(med) / min(med) - 1
        shown = ", ".join(f"{b} over {a} {_ratio_text(r)}" for (a, b), r in ratios.items())
        text = (
            f"{_and(group)} compute the same thing: their medians lie {apart * 100:.1f} % "
            f"apart ({shown}), and no difference among them is resolved"
        )
        apart_by_interval = [f"{b} over {a}" for (a, b), r in ratios.items() if r.resolved]
        if apart_by_interval:
            text += (
                f"; the interval alone excludes 1 for {', '.join(apart_by_interval)}: "
                "identical computations lie further apart than their intervals allow, which is "
                "why the resolution, and not an interval alone, decides what is resolved"
            )
        sentences.append(text)
    return Finding("A/A control", "; ".join(sentences) + ".")


def _repeatability(data: ReportData) -> Finding | None:
    """How repeatable each variant's steady windows are: the share within +-10 % of its median
    window, the lowest named, and how many of the windows slower than it a flag names the cause
    of (underused, slowed, or outside load in that window)."""
    table = repeatability(data)
    if table.empty or table["windows"].sum() < 2:
        return None
    band = f"±{REPEATABLE_BAND * 100:.0f} %"
    low, high = table["within"].min(), table["within"].max()
    span = f"{low * 100:.0f} %" if round(low, 2) == round(high, 2) else (
        f"{low * 100:.0f}-{high * 100:.0f} %"
    )  # fmt: skip
    text = f"of each variant's steady windows, {span} lie within {band} of its median window"
    below = table[table["within"] < REPEATABLE_SHARE].sort_values("within")
    if not below.empty:
        text += f"; below {REPEATABLE_SHARE * 100:.0f} %: " + ", ".join(
            f"{r.label} {r.within * 100:.0f} % of {r.windows}" for r in below.itertuples()
        )
    slow, caught = int(table["slow"].sum()), int(table["slow_flagged"].sum())
    if slow:
        text += (
            f"; of the {slow} window(s) slower than it, {caught} were flagged with their cause "
            "(underused, slowed or outside load)"
        ) + (" and the others are spread no flag explains" if caught < slow else "")
    return Finding("Repeatability", text[0].upper() + text[1:] + ".")


def _costs(values: pd.Series) -> str:
    """'1.14×' or '1.12-1.18×': a slowed window's CPU time per sample over its variant's."""
    low, high = float(values.min()), float(values.max())
    return f"{low:.2f}×" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}×"


def _and(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def _ratio_text(r: stats.SpeedRatio, what: str = "") -> str:
    """'1.14× the next, X (95 % interval 1.09-1.19)', or without the interval when a side has
    too few processes for one."""
    text = f"{r.ratio:.2f}×" + (f" {what}" if what else "")
    if not math.isfinite(r.low):
        return text
    return f"{text} (95 % interval {r.low:.2f}-{r.high:.2f})"


def _why_not(r: stats.SpeedRatio) -> str:
    if not math.isfinite(r.low):
        return "fewer than 2 processes on a side give no interval"
    if r.low <= 1 <= r.high:
        return "the interval holds 1"
    return f"within the suite's A/A resolution of {r.resolution * 100:.1f} %"


def _sides(r: stats.SpeedRatio, a: str, b: str) -> str:
    na, nb = r.processes
    if na == nb:
        return f"{na} processes each"
    return f"{nb} processes of {b}, {na} of {a}"


def _processes(nested: Mapping[object, object]) -> str:
    return f"{len(nested)} process{'es' if len(nested) != 1 else ''}"


def _first_step(data: ReportData) -> Finding | None:
    ok = data.ok.dropna(subset=["first_step_seconds"])
    if ok.empty:
        return None
    med = ok.groupby("label", sort=False)["first_step_seconds"].median().sort_values()
    low, high = med.index[0], med.index[-1]
    text = f"The first step (process start to end of step 1) takes {med[low]:.3g} s for {low}"
    if len(med) == 1:
        return Finding("First step", text + ".")
    text += f" and {med[high]:.3g} s for {high}, {med[high] / med[low]:.1f}× as long"
    parts = startup_breakdown(data)
    parts = parts[parts["label"] == high]
    if len(parts):
        imp, build = parts["import_seconds"].median(), parts["build_seconds"].median()
        text += (
            f"; of those {med[high]:.3g} s, {imp:.3g} s is importing the variant's module "
            f"(TensorFlow's start-up included) and {build:.2g} s building the model, the rest "
            "loading the task, tracing and the step itself"
        )
    else:
        text += ": imports, model build and tracing are paid once per process"
    return Finding("First step", text + ".")


def _target(data: ReportData) -> Finding | None:
    target = data.target_accuracy()
    ok = data.ok
    if target is None or ok.empty:
        return None
    med = ok.groupby("label", sort=False)["seconds_to_target"].median().dropna().sort_values()
    never = [lab for lab in data.plotted_labels() if lab not in med.index]
    if med.empty:
        best = ok["test_accuracy"].max()
        return Finding(
            "Target",
            f"No variant reached {target:.1%} test accuracy (best final accuracy {best:.4f}); "
            "train longer or lower --target-accuracy.",
        )
    text = (
        f"{med.index[0]} reached {target:.1%} test accuracy first, after "
        f"{med.iloc[0]:.3g} s of training (median)"
    )
    if never:
        text += f"; never reached it: {', '.join(never)}"
    return Finding("Target", text + ".")


def _reason(status: object, error: object) -> str:
    """'failed: ValueError: ...' once, not 'failed (failed: ValueError: ...)'."""
    status = str(status)
    if not (isinstance(error, str) and error.strip()):
        return status
    return error if error.startswith(status) else f"{status}: {error}"


# --- batch-size sweeps ----------------------------------------------------------------------

# A slope of log throughput on log batch size at or above this is a cost per step that the
# batch hardly changes (Python, framework dispatch): it is what a larger batch amortizes.
OVERHEAD_SLOPE = 0.5


def sweep_verdict(sweep: SweepData) -> list[Finding]:
    findings = [_sweep_gain(sweep), _sweep_gap(sweep), _sweep_roofline(sweep)]
    return [f for f in findings if f is not None]


def at_batch(findings: Sequence[Finding], batch_size: int) -> list[Finding]:
    """A single-folder verdict inside a sweep report: each topic says which batch size."""
    return [replace(f, topic=f"{f.topic} (batch {batch_size})") for f in findings]


def _ends(sweep: SweepData, column: str) -> tuple[int, int, pd.DataFrame]:
    """The smallest and largest batch size and `column` at both, for variants that have it
    at both ends (a variant that failed at one end has nothing to compare)."""
    wide = sweep.pivot(column)
    small, large = sweep.batch_sizes[0], sweep.batch_sizes[-1]
    # one column when they are one (a sweep interrupted during its first batch size)
    return small, large, wide[list(dict.fromkeys((small, large)))].dropna()


def _sweep_resolution(sweep: SweepData, *sizes: int) -> float:
    """The largest A/A resolution of the batch sizes' folders (NaN if none measured one)."""
    values = [r.value for size in sizes if (r := sweep.resolutions.get(size)) and r.measured]
    return max(values, default=math.nan)


def _sweep_ratio(sweep: SweepData, a: tuple[str, int], b: tuple[str, int]) -> stats.SpeedRatio:
    """(label, batch size) B's throughput over A's, over processes, at the resolution of
    the folders they come from."""
    (la, sa), (lb, sb) = a, b
    return stats.speed_ratio(
        sweep.processes.get(sa, {}).get(la, {}),
        sweep.processes.get(sb, {}).get(lb, {}),
        _sweep_resolution(sweep, sa, sb),
    )


def _sweep_gain(sweep: SweepData) -> Finding | None:
    small, large, both = _ends(sweep, "median")
    if small == large or both.empty:
        return None
    gain = (both[large] / both[small]).sort_values(ascending=False)
    slope = np.log(gain) / math.log(large / small)
    ratios = {lab: _sweep_ratio(sweep, (lab, small), (lab, large)) for lab in gain.index}
    text = (
        f"From batch {small} to {large} ({large / small:.3g}× the samples per step), "
        f"{gain.index[0]} gains most ({_ratio_text(ratios[gain.index[0]], 'the samples/s')})"
    )
    if len(gain) > 1:
        text += f" and {gain.index[-1]} least ({_ratio_text(ratios[gain.index[-1]])})"
    unresolved = [lab for lab, r in ratios.items() if not r.resolved]
    if unresolved:
        text += f"; not resolved from no change: {', '.join(unresolved)}"
    bound = slope[slope >= OVERHEAD_SLOPE]
    if len(bound):
        listed = ", ".join(f"{lab} ({v:.2f})" for lab, v in bound.items())
        text += (
            f". A fixed cost per step (Python, framework dispatch) dominates where throughput "
            f"grows nearly as fast as the batch, slope ≥ {OVERHEAD_SLOPE} on log-log axes: "
            f"{listed}"
        )
    else:
        text += f"; no variant grows with slope ≥ {OVERHEAD_SLOPE} on log-log axes"
    return Finding("Batch size", text + ".")


def _sweep_gap(sweep: SweepData) -> Finding | None:
    """At each end of the sweep, the fastest against the next (a ranking only when resolved)
    and against the slowest; whether the gap changed only when the two intervals do not
    overlap."""
    small, large, both = _ends(sweep, "median")
    if len(both) < 2:
        return None
    parts, gaps = [], []
    for size in dict.fromkeys((small, large)):
        ranked = both[size].sort_values(ascending=False)
        best, second, slowest = ranked.index[0], ranked.index[1], ranked.index[-1]
        top = _sweep_ratio(sweep, (second, size), (best, size))
        gap = _sweep_ratio(sweep, (slowest, size), (best, size))
        gaps.append(gap)
        slower = _ratio_text(gap, f"the slowest, {slowest}")
        if top.resolved:
            part = f"at batch {size}, {best} is fastest, {slower}"
        else:
            part = (
                f"at batch {size}, {best} and {second} are not resolved at the top "
                f"({_why_not(top)}); {best} is {slower}"
            )
        parts.append(part + ("" if gap.resolved else f", not resolved ({_why_not(gap)})"))
    text = "; ".join(parts)
    if len(gaps) == 2:
        first, last = gaps
        if math.isfinite(first.low) and math.isfinite(last.low) and last.high < first.low:
            text += ": larger batches shrink the gap that the per-step overhead opens"
        elif math.isfinite(first.low) and math.isfinite(last.low) and last.low > first.high:
            text += ": larger batches widen the gap"
        else:
            text += ": whether larger batches change the gap is not resolved (intervals overlap)"
    return Finding("Fastest and slowest", text[0].upper() + text[1:] + ".")


def _sweep_roofline(sweep: SweepData) -> Finding | None:
    small, large, both = _ends(sweep, "fraction")
    if both.empty:
        return Finding(
            "Roofline",
            "No GEMM roofline at both ends of the sweep (run without --no-calibrate to "
            "measure it), so how close each level gets to the machine's GEMM speed is unknown.",
        )
    best_large = both[large].sort_values(ascending=False)
    text = (
        f"At batch {large}, {best_large.index[0]} reaches {best_large.iloc[0]:.0%} of the "
        f"GEMM roofline"
    )
    if len(best_large) > 1:
        text += f" and {best_large.index[-1]} {best_large.iloc[-1]:.0%}"
    if small != large:
        best_small = both[small].sort_values(ascending=False)
        text += (
            f"; at batch {small} the closest is {best_small.index[0]} with {best_small.iloc[0]:.0%}"
        )
    # Nothing can beat the GEMMs it is made of: above 1, the calibration measured too little.
    above = sweep.table[sweep.table["fraction"] > 1]
    if len(above):
        sizes = ", ".join(map(str, sorted(above["batch_size"].unique())))
        text += (
            f". A fraction above 100% means the calibrated peak at batch {sizes} is too low "
            "(see its samples under Reproduce): every fraction there is overstated"
        )
    near = best_large[(best_large >= 0.5) & (best_large <= 1)]
    if len(near):
        listed = ", ".join(near.index)
        text += f". Within a factor of 2 of the GEMM limit at batch {large}: {listed}"
    return Finding("Roofline", text + ".")
