"""The verdict: a few sentences generated from the numbers, answering what a reader asks
first. Do the API levels learn the same? Which is fastest, by what ratio? What does the
first step cost? Sentences are plain text; the page escapes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness import stats
from harness.metrics import PARITY_TOLERANCE
from harness.report.data import (
    ReportData,
    format_number,
    parity_was_run,
    startup_breakdown,
    throughput_by_label,
)
from variants import REFERENCE


@dataclass(frozen=True)
class Finding:
    topic: str
    sentence: str


def verdict(data: ReportData) -> list[Finding]:
    if data.ok.empty:  # a suite that just started, or where everything failed
        return [_runs(data)]
    findings = [_runs(data), _parity(data), _accuracy(data), _speed(data), _first_step(data)]
    findings.append(_target(data))
    return [f for f in findings if f is not None]


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


def _parity(data: ReportData) -> Finding:
    if not parity_was_run(data):
        return Finding(
            "Parity",
            "Parity was not run, so whether the levels compute the same steps is untested "
            f"here (a parity run compares every step's loss with {REFERENCE}).",
        )
    s = data.ok[data.ok["variant"] != REFERENCE].dropna(subset=["parity_max_abs_diff"])
    if s.empty:
        return Finding(
            "Parity",
            f"Parity was run, but no finished run besides {REFERENCE} has a parity result: "
            "nothing to compare.",
        )
    worst = s.groupby("label", sort=False)["parity_max_abs_diff"].max()
    failing = worst[worst >= PARITY_TOLERANCE]
    passing = worst[worst < PARITY_TOLERANCE]
    parts = []
    if len(passing):
        parts.append(
            f"{len(passing)} of {len(worst)} variants matched {REFERENCE} within "
            f"{PARITY_TOLERANCE:g} at every step (largest |Δloss| "
            f"{passing.max():.2g}, {passing.idxmax()})"
        )
    if len(failing):
        listed = ", ".join(f"{lab} (max |Δloss| {v:.2g})" for lab, v in failing.items())
        parts.append(f"{len(failing)} did not: {listed}")
    verdict = "they learn the same" if failing.empty else "they do not all learn the same"
    return Finding("Parity", "; ".join(parts) + f": {verdict}.")


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
    samples = throughput_by_label(data)
    if not samples:
        return None
    ranked = sorted(samples, key=lambda lab: -float(np.median(samples[lab])))
    best = ranked[0]
    med = {lab: float(np.median(samples[lab])) for lab in ranked}
    if len(ranked) == 1:
        return Finding(
            "Speed",
            f"{best}, the only variant with a throughput, trains "
            f"{format_number(med[best])} samples/s (median).",
        )
    text = f"{best} is fastest at {format_number(med[best])} samples/s (median)"
    second, slowest = ranked[1], ranked[-1]
    shift = stats.compare_samples(samples[second], samples[best])
    if shift.test.possible:
        sig = "significant" if shift.test.significant() else "not significant"
        test = f"{shift.test.test} p = {shift.test.p_value:.2g}, {sig}"
    else:
        test = f"no test possible: {shift.test.reason}"
    text += f", {med[best] / med[second]:.2f}× the next, {second} ({test})"
    if slowest != second:
        text += f", and {med[best] / med[slowest]:.1f}× the slowest, {slowest}"
    return Finding("Speed", text + ".")


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
