"""The report of as-written suites (`mlpbench run --mode as-written`): how the levels learn as
people write them, in sentences (the verdict) and tables (a page section), from the statistics
each folder stores in its manifest (`learning`, harness/measure/learning.py).

A claim supported in the as-written folder is traced to its cause by the folders of the same
suite run with `--ablate X`, reported together with it: the ablation under which the claim no
longer holds is the one that explains it."""

from __future__ import annotations

import math
from html import escape
from typing import Any

import pandas as pd

from harness.measure import learning, stats
from harness.results.reader import ResultSet

ABLATED = {
    "initializer": "the harness' initial weights",
    "batch_order": "the harness' batch order",
    "optimizer": "the harness' optimizer constants",
    "dtype": "one dtype for every level",
}


def as_written(sets: tuple[ResultSet, ...]) -> list[ResultSet]:
    return [s for s in sets if s.config.get("mode") == "as-written"]


def stored(s: ResultSet) -> dict[str, Any]:
    """The folder's statistics: as its manifest stores them, or computed from its CSVs for a
    folder whose manifest lacks them."""
    found = s.manifest.get("learning")
    if isinstance(found, dict) and "metrics" in found and "claims" in found:
        return found
    return learning.learning(s.summary, s.epochs, s.steps, s.config.get("ablate"))


def _base(sets: list[ResultSet]) -> ResultSet:
    """The folder the claims are judged on: the first with nothing ablated."""
    return next((s for s in sets if not s.config.get("ablate")), sets[0])


def findings(sets: tuple[ResultSet, ...]) -> list[tuple[str, str]]:
    """(topic, sentence) for the verdict: how the levels learn, then each claim."""
    written = as_written(sets)
    if not written:
        return []
    base = _base(written)
    stats_ = stored(base)
    where = f" ({base.name})" if len(sets) > 1 else ""
    out = [(f"Learning as written{where}", _overview(stats_))]
    ablations = [(s, stored(s)) for s in written if s.config.get("ablate")]
    for claim in stats_["claims"]:
        out.append((f"Claim: {claim['claim']}", _claim(claim, stats_, ablations)))
    return out


def _fmt_ci(d: dict[str, Any], digits: int = 3) -> str:
    if not d or not d.get("n"):
        return "no runs"
    text = f"{d['mean']:.{digits}f}"
    if math.isfinite(d.get("low", math.nan)):
        text += f" (95 % CI {d['low']:.{digits}f}–{d['high']:.{digits}f})"
    return text


def _p(p: float) -> str:
    return "p = ?" if not math.isfinite(p) else f"p = {p:.2g}"


def _delta(d: float) -> str:
    return f"Cliff's δ = {d:+.2f} ({stats.delta_label(d)})" if math.isfinite(d) else "δ = ?"


def _overview(s: dict[str, Any]) -> str:
    alpha = s.get("alpha", stats.ALPHA)
    acc = s["metrics"]["test_accuracy"]
    listed = "; ".join(f"{v} {_fmt_ci(d)}" for v, d in acc["variants"].items())
    text = (
        f"Each level initialised, shuffled and set its optimizer constants its own way"
        f"{_ablated(s.get('ablate'))}, over {s['seeds']} seeds each. Final test accuracy: "
        f"{listed}."
    )
    for metric in ("test_accuracy", "train_loss"):
        m = s["metrics"][metric]
        kw = m["kruskal_wallis"]
        if kw.get("reason"):
            text += f" No test across levels of the {m['what']}: {kw['reason']}."
            continue
        differ = [p for p in m["pairs"] if p["p_holm"] < alpha]
        text += (
            f" Kruskal-Wallis across the {len(m['variants'])} variants on the {m['what']}: "
            f"H = {kw['statistic']:.3g}, {_p(kw['p_value'])}, "
            + ("a significant difference" if kw["p_value"] < alpha else "no significant difference")
        )
        if differ:
            text += "; pairs that differ (Mann-Whitney, Holm-adjusted): " + ", ".join(
                f"{p['a']} vs {p['b']} ({_p(p['p_holm'])}, {_delta(p['cliffs_delta'])})"
                for p in differ
            )
        text += "."
    first = s["metrics"]["first_loss"]["variants"]
    if len(first) > 1:
        means = {v: d["mean"] for v, d in first.items()}
        text += (
            f" The first step's loss (mean over seeds) runs from {min(means.values()):.4f} "
            f"({min(means, key=means.get)}) to {max(means.values()):.4f} "
            f"({max(means, key=means.get)}): every level starts from weights of its own."
        )
    if s["seeds"] < s.get("min_seeds", learning.MIN_SEEDS):
        text += (
            f" With fewer than {s.get('min_seeds', learning.MIN_SEEDS)} seeds the tests can "
            "hardly see a difference: run more before trusting a 'not significant'."
        )
    return text


def _ablated(ablate: str | None) -> str:
    return f" except {ABLATED.get(ablate, ablate)} (--ablate {ablate})" if ablate else ""


def _claim(claim: dict[str, Any], s: dict[str, Any], ablations: list) -> str:
    if claim.get("supported") is None:
        return f"Cannot be answered from this suite: {claim.get('reason')}."
    a, b = claim["a"], claim["b"]
    if claim["metric"] == "curves":
        body = (
            f"{a}'s training loss at every epoch against {b}'s, over {claim['n_a']} and "
            f"{claim['n_b']} seeds (Mann-Whitney U at each of {len(claim['epochs'])} epochs, "
            f"Holm-adjusted): smallest {_p(claim['p_value'])}, at epoch {claim['epoch']} with "
            f"{_delta(claim['cliffs_delta'])}; the mean curves are at most "
            f"{abs(claim['largest_gap']):.3g} apart (epoch {claim['largest_gap_epoch']}), ending "
            f"at {claim['final_loss_a']:.4f} and {claim['final_loss_b']:.4f}"
        )
    else:
        body = (
            f"final test accuracy {a} {_fmt_ci(claim['a_stats'], 4)} against {b} "
            f"{_fmt_ci(claim['b_stats'], 4)} ({claim['test']}): {_p(claim['p_value'])}, "
            f"{_delta(claim['cliffs_delta'])}"
        )
        if claim.get("shared_seeds"):
            body += (
                f"; in {claim['identical_seeds']} of {claim['shared_seeds']} seeds the two "
                "reached exactly the same accuracy"
            )
            if claim["identical_seeds"] == claim["shared_seeds"]:
                body += (
                    " (Keras seeds both alike and builds the same layers in the same order: "
                    "the same seed trains the same model, however it is written)"
                )
    if not claim["supported"]:
        return f"Not supported: {body}. There is no difference to explain{_also(claim, ablations)}."
    return f"Supported: {body}. {_explain(claim, ablations)}"


def _also(claim: dict[str, Any], ablations: list) -> str:
    runs = [(s, c) for s, st in ablations for c in st["claims"] if c["key"] == claim["key"]]
    if not runs:
        return ""
    listed = ", ".join(
        f"{s.config.get('ablate')} {_p(c.get('p_value', math.nan))}" for s, c in runs
    )
    return f" (with one default handed back: {listed})"


def _explain(claim: dict[str, Any], ablations: list) -> str:
    runs = [(s, c) for s, st in ablations for c in st["claims"] if c["key"] == claim["key"]]
    if not runs:
        return (
            "Which default causes it is not traced: run the same suite with --ablate "
            f"{{{','.join(ABLATED)}}} and report the folders together."
        )
    gone = [(s, c) for s, c in runs if c.get("supported") is False]
    listed = "; ".join(
        f"with {ABLATED.get(s.config.get('ablate'), s.config.get('ablate'))} ({s.name}) "
        f"{_p(c.get('p_value', math.nan))}, {_delta(c.get('cliffs_delta', math.nan))}"
        for s, c in runs
    )
    if gone:
        causes = ", ".join(str(s.config.get("ablate")) for s, _ in gone)
        return f"Handing back one default at a time: {listed}. Explained by: {causes}."
    return (
        f"Handing back one default at a time: {listed}. No single ablation run removes it: "
        "the defaults not yet ablated, or several together, cause it."
    )


def section(sets: tuple[ResultSet, ...]) -> str | None:
    """Tables of the as-written statistics: per variant, then every pair, per folder."""
    from harness.report.html import formatted, table

    written = as_written(sets)
    if not written:
        return None
    parts = [
        '<h2 id="learning">Learning as written</h2>',
        "<p>Each level with its own initializer, batch order and optimizer constants. Means "
        "over seeds with 95 % t-intervals; pairs by two-sided Mann-Whitney U, Holm-adjusted "
        "over every pair, with Cliff's δ (row over column variant: +1 every seed of the first "
        "above every seed of the second). The loss figures below draw every seed's band.</p>",
    ]
    for s in written:
        st = stored(s)
        if len(written) > 1:
            parts.append(f"<h3>{escape(s.name)}{escape(_ablated(s.config.get('ablate')))}</h3>")
        rows = []
        for v in st["metrics"]["test_accuracy"]["variants"]:
            row: dict[str, Any] = {"variant": v}
            for metric, m in st["metrics"].items():
                d = m["variants"].get(v, {})
                row[f"{metric} mean"] = d.get("mean")
                row[f"{metric} 95% CI"] = _interval(d)
            rows.append(row)
        parts.append(table(formatted(pd.DataFrame(rows)), "learning"))
        pairs = [
            {"metric": metric, **{k: p[k] for k in ("a", "b", "p_value", "p_holm", "cliffs_delta")}}
            for metric in ("test_accuracy", "train_loss")
            for p in st["metrics"][metric]["pairs"]
        ]
        if pairs:
            parts.append(table(formatted(pd.DataFrame(pairs)), "learning-pairs"))
    return "\n".join(parts)


def _interval(d: dict[str, Any]) -> str:
    low, high = d.get("low", math.nan), d.get("high", math.nan)
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"{low:.4g} – {high:.4g}"
