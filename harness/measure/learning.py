"""How the levels learn as people write them (`--mode as-written`), by statistics over seeds.

Each level initialises, orders its batches and sets its optimizer's constants its own way, so
no two runs take the same steps and per-step parity means nothing: what can be compared is the
distribution over seeds. Per variant: the final test accuracy, the final training loss and the
loss of the first step (which shows the levels started from different weights), each with its
mean and 95 % t-interval. Across variants: Kruskal-Wallis, then every pair by a two-sided
Mann-Whitney U test, Holm-adjusted over the pairs, with Cliff's delta as the effect size. And
the two claims users make, each tested as it is stated.

The result is a plain dict, stored in the suite's manifest under `learning` (results/README.md)
so that a report reads it from the folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.measure import stats

MIN_SEEDS = 10  # below this, the tests can hardly see a difference: said so, not hidden
METRICS = {
    "test_accuracy": "final test accuracy",
    "train_loss": "final training loss",
    "first_loss": "loss of the first step",
}


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    metric: str  # "curves": the training loss of every epoch; else a column of METRICS
    a: tuple[str, ...]  # who the claim is about, most typical first; the first present is used
    a_level: str  # ...or else any variant of this level
    b: tuple[str, ...]
    b_level: str
    alternative: str  # "two-sided": A differs from B; "greater": A is higher than B


CLAIMS = (
    Claim(
        key="keras_curves",
        text="Keras' loss curves differ from hand-written TF",
        metric="curves",
        a=("keras_sequential", "keras_functional", "keras_subclass"),
        a_level="Keras",
        b=("tf2_function", "tf2_eager", "tf2_function_xla", "tf2_tfdata"),
        b_level="TF2 core",
        alternative="two-sided",
    ),
    Claim(
        key="subclass_accuracy",
        text="subclassing reaches higher accuracy than Sequential",
        metric="test_accuracy",
        a=("keras_subclass",),
        a_level="",
        b=("keras_sequential",),
        b_level="",
        alternative="greater",
    ),
)


def samples(
    summary: pd.DataFrame, epochs: pd.DataFrame, steps: pd.DataFrame
) -> dict[str, dict[str, dict[int, float]]]:
    """metric -> variant -> seed -> value, from finished runs only."""
    ok = summary[summary["status"] == "ok"]
    keys = set(zip(ok["variant"], ok["seed"].astype(int), strict=True))
    out: dict[str, dict[str, dict[int, float]]] = {m: {} for m in METRICS}

    def put(metric: str, variant: str, seed: Any, value: Any) -> None:
        if (variant, int(seed)) in keys and value is not None and np.isfinite(float(value)):
            out[metric].setdefault(variant, {})[int(seed)] = float(value)

    for r in ok.itertuples():
        put("test_accuracy", r.variant, r.seed, r.test_accuracy)
    if len(epochs):
        last = epochs.loc[epochs.groupby(["variant", "seed"])["epoch"].idxmax()]
        for r in last.itertuples():
            put("train_loss", r.variant, r.seed, r.train_loss)
    if len(steps):
        for r in steps[steps["step"] == 1].itertuples():
            put("first_loss", r.variant, r.seed, r.loss)
    order = list(dict.fromkeys(summary["variant"]))  # the suite's order, in every table
    return {m: {v: groups[v] for v in order if v in groups} for m, groups in out.items()}


def curves(epochs: pd.DataFrame, variant: str, keys: set[tuple[str, int]]) -> pd.DataFrame:
    """The training loss of every epoch of `variant`'s finished runs: one row per seed."""
    mine = epochs[epochs["variant"] == variant]
    mine = mine[[(variant, int(s)) in keys for s in mine["seed"]]]
    return mine.pivot_table(index="seed", columns="epoch", values="train_loss")


def describe(values: dict[int, float]) -> dict[str, Any]:
    ci = stats.mean_ci(values.values())
    spread = stats.spread(values.values())
    return {"n": ci.n, "mean": ci.mean, "low": ci.low, "high": ci.high, "median": spread.median}


def _test(result: stats.TestResult) -> dict[str, Any]:
    return {
        "test": result.test,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "n": result.n,
        "reason": result.reason,
    }


def learning(
    summary: pd.DataFrame,
    epochs: pd.DataFrame,
    steps: pd.DataFrame,
    ablate: str | None = None,
) -> dict[str, Any]:
    """The statistics of an as-written suite (see the module docstring); `ablate` is what the
    suite handed back to the harness, recorded with them."""
    by_metric = samples(summary, epochs, steps)
    metrics: dict[str, Any] = {}
    for metric, groups in by_metric.items():
        values = {v: list(s.values()) for v, s in groups.items()}
        metrics[metric] = {
            "what": METRICS[metric],
            "variants": {v: describe(s) for v, s in groups.items()},
            "kruskal_wallis": _test(stats.kruskal_wallis(values)),
            "pairs": [
                {"a": p.a, "b": p.b, **_test(p.test), "p_holm": p.p_holm, "cliffs_delta": p.delta}
                for p in stats.pairwise(values)
            ],
        }
    seeds = [len(s) for s in by_metric["test_accuracy"].values()]
    ok = summary[summary["status"] == "ok"]
    keys = set(zip(ok["variant"], ok["seed"].astype(int), strict=True))
    return {
        "ablate": ablate,
        "alpha": stats.ALPHA,
        "seeds": min(seeds, default=0),
        "min_seeds": MIN_SEEDS,
        "metrics": metrics,
        "claims": [claim_result(c, summary, epochs, by_metric, keys) for c in CLAIMS],
    }


def _pick(names: tuple[str, ...], level: str, summary: pd.DataFrame) -> str | None:
    ok = summary[summary["status"] == "ok"]
    present = list(dict.fromkeys(ok["variant"]))
    for name in names:
        if name in present:
            return name
    if level and "level" in ok:
        at_level = ok[ok["level"] == level]["variant"]
        return str(at_level.iloc[0]) if len(at_level) else None
    return None


def claim_result(
    claim: Claim,
    summary: pd.DataFrame,
    epochs: pd.DataFrame,
    by_metric: dict[str, dict[str, dict[int, float]]],
    keys: set[tuple[str, int]],
) -> dict[str, Any]:
    """The claim tested on this suite: `supported` True or False, or None with a `reason`."""
    a, b = _pick(claim.a, claim.a_level, summary), _pick(claim.b, claim.b_level, summary)
    result: dict[str, Any] = {"key": claim.key, "claim": claim.text, "a": a, "b": b}
    if a is None or b is None:
        missing = claim.a[0] if a is None else claim.b[0]
        return {**result, "supported": None, "reason": f"no finished run of {missing}"}
    if claim.metric == "curves":
        return {**result, **_curves_differ(epochs, a, b, keys)}
    sa, sb = by_metric[claim.metric].get(a, {}), by_metric[claim.metric].get(b, {})
    test = stats.mann_whitney(list(sa.values()), list(sb.values()), claim.alternative)
    delta = stats.cliffs_delta(list(sa.values()), list(sb.values()))
    shared = set(sa) & set(sb)
    result.update(
        metric=claim.metric,
        test=f"Mann-Whitney U, one-sided ({a} higher)"
        if claim.alternative == "greater"
        else "Mann-Whitney U, two-sided",
        n_a=len(sa),
        n_b=len(sb),
        a_stats=describe(sa),
        b_stats=describe(sb),
        p_value=test.p_value,
        cliffs_delta=delta,
        # the same seed gives both the same draws when a level seeds them alike
        identical_seeds=sum(sa[s] == sb[s] for s in shared),
        shared_seeds=len(shared),
    )
    if not test.possible:
        return {**result, "supported": None, "reason": test.reason}
    return {**result, "supported": bool(test.p_value < stats.ALPHA and delta > 0)}


def _curves_differ(
    epochs: pd.DataFrame, a: str, b: str, keys: set[tuple[str, int]]
) -> dict[str, Any]:
    """Do two variants' training-loss curves differ? At every epoch a two-sided Mann-Whitney U
    test over seeds, Holm-adjusted over the epochs: the curves differ where an adjusted p is
    below alpha. Reported: the epoch with the smallest adjusted p (of equal ones, the largest
    effect), Cliff's delta there (A over B: positive, A's loss higher), and the largest gap
    between the mean curves."""
    ca, cb = curves(epochs, a, keys), curves(epochs, b, keys)
    shared = [e for e in ca.columns if e in cb.columns]
    out: dict[str, Any] = {
        "metric": "curves",
        "test": "Mann-Whitney U at every epoch, two-sided, Holm-adjusted over epochs",
        "n_a": len(ca),
        "n_b": len(cb),
    }
    if not shared or min(len(ca), len(cb)) < 2:
        return {**out, "supported": None, "reason": "fewer than 2 seeds of each"}
    tests = [stats.mann_whitney(ca[e], cb[e]) for e in shared]
    adjusted = stats.holm([t.p_value for t in tests])
    deltas = [stats.cliffs_delta(ca[e], cb[e]) for e in shared]
    gaps = [float(ca[e].mean() - cb[e].mean()) for e in shared]
    # the smallest adjusted p; among equal ones (Holm caps them at 1), the largest effect
    best = int(np.lexsort((-np.abs(deltas), np.nan_to_num(adjusted, nan=2.0)))[0])
    widest = int(np.argmax(np.abs(gaps)))
    out.update(
        epochs=[int(e) for e in shared],
        p_holm=adjusted,
        deltas=deltas,
        mean_gap=gaps,
        epoch=int(shared[best]),
        p_value=adjusted[best],
        cliffs_delta=deltas[best],
        largest_gap=gaps[widest],
        largest_gap_epoch=int(shared[widest]),
        final_loss_a=float(ca[shared[-1]].mean()),
        final_loss_b=float(cb[shared[-1]].mean()),
    )
    if not math.isfinite(adjusted[best]):
        return {**out, "supported": None, "reason": tests[best].reason}
    return {**out, "supported": bool(adjusted[best] < stats.ALPHA)}
