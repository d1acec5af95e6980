"""The section of a task other than the MLP (`mlpbench run --task ...`): which levels can
express its model and how, what that costs in code against the same level's MLP, in speed and
in first step, and the loss of each of its outputs. Read from what the folders store: the
config's task and outputs, summary.csv (status, error, loc, api_level), the manifest's
`mlp_forms` (the MLP variants' lines of code when the suite ran) and steps.csv's
`<output>_loss` columns."""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd

from harness.report.data import ReportData, throughput_by_process
from harness.results.reader import ResultSet


def task_sets(data: ReportData) -> list[ResultSet]:
    """The sets that trained a task other than the MLP."""
    return [s for s in data.sets if (s.config.get("task") or "mlp") != "mlp"]


def outputs(data: ReportData) -> list[str]:
    """The outputs with losses of their own, as the first such set's config lists them."""
    sets = task_sets(data)
    return list(sets[0].config.get("outputs") or []) if sets else []


def expressiveness(data: ReportData) -> pd.DataFrame:
    """One row per variant: whether its API expressed the model, how (its api_level) or why
    not (the reason its run recorded), its lines of code beside the same level's MLP form,
    and its median speed and first step."""
    forms: dict[str, dict] = {}
    for s in task_sets(data):
        forms.update(s.manifest.get("mlp_forms") or {})
    speeds = throughput_by_process(data)
    rows = []
    for label in data.labels:
        runs = data.summary[data.summary["label"] == label]
        variant = str(runs["variant"].iloc[0])
        unable = runs[runs["status"] == "inexpressible"]
        ok = runs[runs["status"] == "ok"]
        loc = runs["loc"].dropna()
        mlp = (forms.get(variant) or {}).get("loc")
        medians = speeds.get(label) or {}
        if len(unable):  # no code of this level runs the model: no lines to hold against its MLP
            loc, mlp = loc.iloc[:0], None
        rows.append(
            {
                "variant": label,
                "level": _first(runs["level"]),
                "expresses the model": "no" if len(unable) else "yes",
                "how, or why not": _first(unable["error"])
                if len(unable)
                else _first(runs["api_level"]),
                "LOC": int(loc.iloc[0]) if len(loc) else None,
                "LOC of its MLP": mlp,
                "extra lines": int(loc.iloc[0]) - int(mlp)
                if len(loc) and mlp is not None
                else None,
                "samples/s (median of processes)": float(
                    np.median([np.median(w) for w in medians.values()])
                )
                if medians
                else None,
                "first step s (median)": ok["first_step_seconds"].median() if len(ok) else None,
            }
        )
    return pd.DataFrame(rows)


def output_losses(data: ReportData) -> pd.DataFrame:
    """Each output's training loss per epoch (the mean of its steps), per variant and seed:
    columns label, seed, epoch, output, loss."""
    names = [o for o in outputs(data) if f"{o}_loss" in data.steps.columns]
    steps = data.ok_runs(data.steps)
    if not names or steps.empty:
        return pd.DataFrame(columns=["label", "seed", "epoch", "output", "loss"])
    columns = {f"{o}_loss": o for o in names}
    long = (
        steps[["label", "seed", "epoch", *columns]]
        .rename(columns=columns)
        .melt(id_vars=["label", "seed", "epoch"], var_name="output", value_name="loss")
        .dropna(subset=["loss"])
    )
    return long.groupby(["label", "seed", "epoch", "output"], as_index=False)["loss"].mean()


def findings(data: ReportData) -> list[tuple[str, str]]:
    """(topic, sentence) for the verdict: which API the model needs, and what it costs."""
    sets = task_sets(data)
    if not sets:
        return []
    table = expressiveness(data)
    task = sets[0].config.get("task")
    able = table[table["expresses the model"] == "yes"]
    unable = table[table["expresses the model"] == "no"]
    parts = []
    for _, r in unable.iterrows():
        reason = str(r["how, or why not"] or "").split(" (")[
            0
        ]  # its first clause; the table has all
        parts.append(f"{r['variant']} cannot express it: {reason}")
    by_level = []
    for level, rows in able.groupby("level", sort=False, dropna=False):
        forms = []
        for _, r in rows.iterrows():
            form = f"{r['variant']}"
            if pd.notna(r["LOC"]):
                extra = (
                    f", {int(r['extra lines']):+d} over its MLP"
                    if pd.notna(r["extra lines"])
                    else ""
                )
                form += f" ({int(r['LOC'])} lines{extra}"
                speed = r["samples/s (median of processes)"]
                form += f", {speed:,.0f} samples/s)" if pd.notna(speed) else ")"
            forms.append(form)
        by_level.append(f"{level if pd.notna(level) else 'other'}: {', '.join(forms)}")
    if by_level:
        parts.append("Forms that express it, per level: " + "; ".join(by_level))
    return [(f"Task {task}", f"The {task} model: " + ". ".join(parts) + ".")]


def section(data: ReportData) -> str | None:
    """The page section (HTML, escaped): the expressiveness table (the outputs' losses are a
    figure among the others, harness/report/figures.py)."""
    from harness.report.html import formatted, table

    sets = task_sets(data)
    if not sets:
        return None
    task = str(sets[0].config.get("task"))
    options = sets[0].config.get("spec_options") or {}
    described = ", ".join(f"{k} {v}" for k, v in options.items())
    return "".join(
        [
            f'<h2 id="task">Task {escape(task)}: which API can express it</h2>',
            f"<p>The model of --task {escape(task)} ({escape(described)}), at every level the "
            "suite ran: whether the level's API expresses it and how, or the reason it cannot; "
            "its lines of code beside the same level's MLP variant (what a model that is not "
            "a plain stack costs in code); median throughput of its processes and first "
            "step.</p>",
            table(formatted(expressiveness(data)), "task", bad=("no",)),
        ]
    )


def _first(values: pd.Series) -> object:
    present = values.dropna()
    return present.iloc[0] if len(present) else None
