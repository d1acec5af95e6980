"""`--mode as-written`: each level initialises, shuffles and sets its optimizer constants its
own way; learning is compared by statistics over seeds, the two claims are answered in the
report's verdict, and `--ablate` hands one default back to the harness."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import variants
from harness.cli.report import build_report
from harness.measure import learning, stats
from harness.report import learning as report_learning
from harness.report.data import combine
from harness.report.verdict import verdict
from harness.results.reader import ResultSet, read_results
from harness.run.worker import follows_as_written
from variants.base import CONTROLLED, Adam, AsWritten

from .conftest import BATCH
from .test_cli import assert_one_line_error, mlpbench

LEVELS = ["numpy_scratch", "tf1_graph", "tf2_function", "keras_sequential"]  # one per level
WRITTEN = [*LEVELS, "keras_subclass"]
SMALL = ["--hidden", "16", "--epochs", "2", "--no-calibrate"]
CLAIMS = {c.key: c.text for c in learning.CLAIMS}


# -- the statistics, on inputs whose answer is known --------------------------------------------


def test_identical_samples_do_not_differ():
    a = [0.90, 0.91, 0.93, 0.92, 0.95, 0.94]
    assert stats.mann_whitney(a, a).p_value == pytest.approx(1.0)
    assert stats.kruskal_wallis({"x": a, "y": a, "z": a}).p_value == pytest.approx(1.0)
    assert stats.cliffs_delta(a, a) == 0.0
    assert all(p.p_holm == pytest.approx(1.0) for p in stats.pairwise({"x": a, "y": a, "z": a}))
    # one value everywhere: nothing to rank, and still no difference
    assert stats.mann_whitney([1.0] * 5, [1.0] * 5).p_value == 1.0


def test_shifted_samples_differ_with_a_large_effect():
    rng = np.random.default_rng(0)
    a = rng.normal(0.90, 0.01, 10)
    b = a + 0.05  # five standard deviations higher
    assert stats.mann_whitney(a, b).p_value < 0.001
    assert stats.mann_whitney(b, a, alternative="greater").p_value < 0.001
    assert stats.mann_whitney(a, b, alternative="greater").p_value > 0.99
    assert stats.cliffs_delta(b, a) == 1.0 and stats.delta_label(1.0) == "large"
    assert stats.kruskal_wallis({"a": a, "b": b, "c": a}).p_value < 0.01
    pairs = {(p.a, p.b): p for p in stats.pairwise({"a": a, "b": b, "c": a})}
    assert pairs["a", "b"].p_holm < 0.05 and pairs["a", "b"].delta == -1.0
    assert pairs["a", "c"].p_holm == pytest.approx(1.0)


def test_holm_adjusts_a_family_and_leaves_missing_tests_out():
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])  # 3 tests: x3, x2 (kept monotone)
    assert math.isnan(adjusted[3])
    assert stats.delta_label(0.1) == "negligible" and stats.delta_label(-0.4) == "medium"


def frames(values: dict[str, list[list[float]]], accuracy: dict[str, list[float]]):
    """summary, epochs and steps of a made-up as-written suite: per variant, per seed, a
    training-loss curve and a final accuracy."""
    summary, epochs, steps = [], [], []
    for v, curves in values.items():
        for seed, curve in enumerate(curves):
            summary.append({"variant": v, "seed": seed, "status": "ok", "level": "Keras",
                            "test_accuracy": accuracy[v][seed]})  # fmt: skip
            for e, loss in enumerate(curve, start=1):
                epochs.append({"variant": v, "seed": seed, "epoch": e, "train_loss": loss})
            steps.append({"variant": v, "seed": seed, "epoch": 1, "step": 1, "loss": curve[0]})
    return pd.DataFrame(summary), pd.DataFrame(epochs), pd.DataFrame(steps)


def test_the_claims_on_known_inputs():
    rng = np.random.default_rng(1)
    base = [list(2.0 - np.arange(5) * 0.3 + rng.normal(0, 0.01, 5)) for _ in range(10)]
    acc = list(0.9 + rng.normal(0, 0.005, 10))
    same = frames(
        {"tf2_function": base, "keras_sequential": base, "keras_subclass": base},
        {"tf2_function": acc, "keras_sequential": acc, "keras_subclass": acc},
    )
    claims = {c["key"]: c for c in learning.learning(*same)["claims"]}
    assert claims["keras_curves"]["supported"] is False
    assert claims["keras_curves"]["p_value"] == pytest.approx(1.0)
    assert claims["subclass_accuracy"]["supported"] is False
    assert claims["subclass_accuracy"]["identical_seeds"] == 10

    higher = [list(np.array(c) + 0.2) for c in base]
    shifted = frames(
        {"tf2_function": base, "keras_sequential": higher, "keras_subclass": base},
        {"tf2_function": acc, "keras_sequential": acc, "keras_subclass": [a + 0.02 for a in acc]},
    )
    stored = learning.learning(*shifted)
    claims = {c["key"]: c for c in stored["claims"]}
    assert claims["keras_curves"]["supported"] is True and claims["keras_curves"]["p_value"] < 0.01
    assert claims["keras_curves"]["cliffs_delta"] == 1.0  # Keras' loss above at every seed
    assert claims["subclass_accuracy"]["supported"] is True
    assert json.loads(json.dumps(stored)) == json.loads(json.dumps(stored))  # stored as JSON


def result_set(name: str, ablate: str | None, claims: list[dict]) -> ResultSet:
    config = {"mode": "as-written", **({"ablate": ablate} if ablate else {})}
    empty = pd.DataFrame()
    manifest = {"config": config, "learning": {"ablate": ablate, "claims": claims, "metrics": {}}}
    return ResultSet(name, Path(name), manifest, empty, empty, empty)


def test_an_ablation_that_removes_a_difference_explains_it():
    claim = {"key": "keras_curves", "claim": CLAIMS["keras_curves"], "a": "keras_sequential",
             "b": "tf2_function", "metric": "curves", "n_a": 10, "n_b": 10, "epochs": [1, 2],
             "p_value": 0.001, "epoch": 2, "cliffs_delta": 0.9, "largest_gap": 0.2,
             "largest_gap_epoch": 1, "final_loss_a": 0.4, "final_loss_b": 0.3,
             "supported": True}  # fmt: skip
    gone = {**claim, "p_value": 0.6, "cliffs_delta": 0.05, "supported": False}
    base = {"metrics": {}, "claims": [claim]}
    ablations = [
        (result_set("aw-order", "batch_order", [claim]), {"claims": [claim]}),
        (result_set("aw-init", "initializer", [gone]), {"claims": [gone]}),
    ]
    text = report_learning._claim(claim, base, ablations)
    assert text.startswith("Supported:") and "Explained by: initializer." in text
    assert "p = 0.6" in text and "p = 0.001" in text
    untraced = report_learning._claim(claim, base, [])
    assert "--ablate {initializer,batch_order,optimizer,dtype}" in untraced


# -- the variants: their own ways, and the flags that hand them back ---------------------------


def train(name, task, as_written=CONTROLLED, init=True):
    v = variants.load(name)()
    v.build(task.spec, Adam(), task.init_weights if init else None, as_written=as_written)
    x, y = (task.x_train, task.y_train) if as_written.shuffle else task.epoch_data(0)
    return np.asarray(v.train_epoch(x, y, BATCH)), [np.asarray(w) for w in v.get_weights()]


@pytest.mark.parametrize("name", WRITTEN)
def test_as_written_with_every_default_handed_back_is_the_controlled_run(name, digits_task):
    assert follows_as_written(variants.load(name))
    handed_back = AsWritten(seed=3, shuffle=False, optimizer_defaults=False, own_dtype=False)
    controlled, _ = train(name, digits_task)
    np.testing.assert_array_equal(train(name, digits_task, handed_back)[0], controlled)
    own = train(name, digits_task, AsWritten(seed=3), init=False)[0]
    assert own.shape == controlled.shape and not np.allclose(own, controlled)


@pytest.mark.parametrize("name", WRITTEN)
def test_each_level_draws_glorot_weights_from_its_own_seeded_rng(name, digits_task):
    def initial(seed):
        v = variants.load(name)()
        v.build(digits_task.spec, Adam(), None, as_written=AsWritten(seed=seed))
        return [np.asarray(w) for w in v.get_weights()]

    first, again, other = initial(0), initial(0), initial(1)
    for w, w_again, w_other, shape in zip(
        first, again, other, digits_task.spec.weight_shapes, strict=True
    ):
        np.testing.assert_array_equal(w, w_again)  # seeded: the same seed, the same weights
        assert w.shape == shape
        if len(shape) == 2:
            assert not np.array_equal(w, w_other)
            assert np.abs(w).max() <= math.sqrt(6 / sum(shape)) + 1e-7 < 2 * np.abs(w).max()
        else:
            assert not w.any()  # zero biases
    assert not np.array_equal(first[0], digits_task.init_weights[0])  # not the harness' draw


def test_variants_without_as_written_are_not_run_as_written():
    assert not follows_as_written(variants.load("tf1_lowlevel"))
    assert not follows_as_written(variants.load("keras_train_on_batch"))


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--mode", "bogus"],
        ["--ablate", "optimizer"],  # without --mode as-written
        ["--mode", "as-written", "--ablate", "bogus"],
        ["--mode", "as-written", "--dtype", "float64"],  # own dtypes, unless ablated
        ["--mode", "as-written", "--variants", "numpy_scratch,tf1_lowlevel"],  # cannot
    ],
    ids=["bogus mode", "ablate controlled", "bogus ablation", "float64", "unable variant"],
)
def test_bad_mode_arguments_are_one_line_and_exit_2(args, tmp_path):
    result = mlpbench("run", *SMALL, "--seeds", "0", "--out", str(tmp_path / "r"), *args)
    assert_one_line_error(result)
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def as_written_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("aswritten") / "r"
    args = ["--mode", "as-written", "--variants", ",".join(WRITTEN), "--seeds", "0,1,2"]
    result = mlpbench("run", *SMALL, *args, "--out", str(out), timeout=300)
    return result, out


def test_an_as_written_run_starts_every_level_from_its_own_weights(as_written_run):
    result, out = as_written_run
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["mode"] == "as-written" and "ablate" not in manifest["config"]
    assert manifest["config"]["parity"] is False  # no two levels take the same steps
    steps = pd.read_csv(out / "steps.csv")
    first = steps[steps["step"] == 1].pivot(index="seed", columns="variant", values="loss")
    for seed, losses in first.iterrows():
        by_level = losses[LEVELS].to_numpy()
        gaps = np.abs(by_level[:, None] - by_level[None, :])[np.triu_indices(len(LEVELS), 1)]
        assert gaps.min() > 1e-4, f"seed {seed}: {losses.to_dict()}"
    for v in LEVELS:  # and each level from different weights in each seed
        assert first[v].nunique() == len(first)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["parity_max_abs_diff"].isna().all()
    stored = manifest["learning"]
    assert stored["seeds"] == 3 and set(stored["metrics"]) == set(learning.METRICS)
    assert set(stored["metrics"]["test_accuracy"]["variants"]) == set(WRITTEN)
    assert len(stored["metrics"]["test_accuracy"]["pairs"]) == 10  # 5 variants, every pair
    assert [c["key"] for c in stored["claims"]] == list(CLAIMS)


def test_the_report_answers_both_claims_with_numbers(as_written_run, tmp_path):
    result, out = as_written_run
    findings = {f.topic: f.sentence for f in verdict(combine([read_results(out)]))}
    for text in CLAIMS.values():
        sentence = findings[f"Claim: {text}"]
        assert sentence.startswith(("Supported: ", "Not supported: ")), sentence
        assert "p = " in sentence and "Cliff's δ = " in sentence
    assert "Parity" not in findings  # not judged as written
    overview = findings["Learning as written"]
    assert "Kruskal-Wallis" in overview and "fewer than 10 seeds" in overview
    for text in CLAIMS.values():
        assert f"claim '{text}': " in result.stderr
    page = build_report([out], tmp_path / "report").read_text()
    assert 'id="learning"' in page and "Cliff" in page


def test_an_ablation_is_recorded_and_hands_back_only_its_default(as_written_run, tmp_path):
    _, written = as_written_run
    out = tmp_path / "ablated"
    args = ["--mode", "as-written", "--ablate", "dtype", "--variants", "numpy_scratch"]
    result = mlpbench("run", *SMALL, *args, "--seeds", "0,1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["ablate"] == "dtype" and manifest["learning"]["ablate"] == "dtype"
    # float32 instead of NumPy's float64, with the same own weights and batch order
    steps = [
        pd.read_csv(f / "steps.csv").query("variant == 'numpy_scratch'") for f in (out, written)
    ]
    merged = steps[0].merge(steps[1], on=["seed", "step"])
    assert len(merged) == len(steps[0]) > 0
    np.testing.assert_allclose(merged["loss_x"], merged["loss_y"], atol=1e-4)
