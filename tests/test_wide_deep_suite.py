"""--task wide-deep through the whole suite: the harness makes both inputs, records each
output's loss, checks parity on all of them, records Keras Sequential as unable to express the
model (a result, exit 0), and the report answers which API the model needs.

The per-variant parity of the task's variants is in test_wide_deep_tf.py and
test_wide_deep_keras.py; this file checks what the harness adds around them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import variants
from harness.cli.report import build_report
from harness.datasets import load_digits
from harness.measure import roofline
from harness.results import storage
from harness.task import Task, make_task
from variants.base import ModelSpec, WideDeepSpec

from .test_cli import mlpbench
from .test_report_browser import BROWSER, chromium

HERE = Path(__file__).parent


def test_the_harness_makes_both_inputs_from_one_seed(tmp_path: Path) -> None:
    task = make_task(load_digits(), (32, 16), 2, seed=3, task="wide-deep", loss_weights=(0.8, 0.2))
    (wide, deep), y = task.epoch_data(1)
    order = task.epoch_order(1)
    np.testing.assert_array_equal(deep, task.x_train[order])
    # the documented subset: every 4th feature, in the dataset's order
    np.testing.assert_array_equal(wide, task.x_train[order][:, ::4])
    assert wide.shape[1] == task.spec.wide_size == 16 != deep.shape[1]
    assert [w.shape for w in task.init_weights] == task.spec.weight_shapes
    # deep path, then the main head on [wide, last hidden], then the auxiliary head
    assert task.spec.weight_shapes[-4:] == [(16 + 16, 10), (10,), (16, 10), (10,)]
    # the same seed makes the same deep-path weights as the MLP task's (one stream per seed)
    mlp = make_task(load_digits(), (32, 16), 2, seed=3)
    for a, b in zip(task.init_weights[:2], mlp.init_weights[:2], strict=True):
        np.testing.assert_array_equal(a, b)
    task.save(tmp_path / "t.npz")
    again = Task.load(tmp_path / "t.npz")
    assert again.spec == task.spec and again.spec.loss_weights == (0.8, 0.2)
    assert again.fingerprint() == task.fingerprint()


def test_the_flop_model_counts_both_heads_and_no_gradient_for_data() -> None:
    spec = WideDeepSpec(64, (32, 16))
    wide = 16
    forward = 64 * 32 + 32 * 16 + (wide + 16) * 10 + 16 * 10
    weight_grads = forward
    # da of the deep layers past the first, and of the heads' deep part only
    input_grads = 32 * 16 + 16 * 10 + 16 * 10
    assert roofline.flops_per_sample(spec) == 2 * (forward + weight_grads + input_grads)
    # the MLP's count is unchanged
    assert roofline.flops_per_sample(ModelSpec(784, (512, 256))) == 2_407_424


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wide-deep") / "suite"
    result = mlpbench(
        "run", "--task", "wide-deep", "--variants", "numpy_scratch,keras_sequential",
        "--variant", "tests.wide_deep_mistakes:SwappedLossWeights",
        "--seeds", "0", "--epochs", "2", "--no-calibrate", "--out", str(out), timeout=300,
    )  # fmt: skip
    # the mistaken variant fails parity: exit 1, and nothing else is wrong
    assert result.returncode == 1, result.stderr[-3000:]
    return out


def test_a_suite_records_each_output_and_what_cannot_be_expressed(small_suite: Path) -> None:
    results = storage.load_results(small_suite)
    config = results.manifest["config"]
    assert config["task"] == "wide-deep" and config["outputs"] == ["main", "aux"]
    assert config["spec_options"] == {"wide_stride": 4, "loss_weights": [0.9, 0.1]}
    steps = results.steps[results.steps["variant"] == "numpy_scratch"]
    assert list(steps.columns[-2:]) == ["main_loss", "aux_loss"]
    # the total is the weighted sum of the outputs' losses, step by step
    total = 0.9 * steps["main_loss"] + 0.1 * steps["aux_loss"]
    np.testing.assert_allclose(steps["loss"], total, rtol=1e-6)
    summary = results.summary[results.summary["seed"] == 0].set_index("variant")
    assert summary.loc["numpy_scratch", "status"] == "ok"
    seq = summary.loc["keras_sequential"]
    assert seq["status"] == "inexpressible"
    assert "no second input" in seq["error"] and "no second output" in seq["error"]
    # the MLP form of each level the suite ran, for the report's lines-of-code comparison
    assert results.manifest["mlp_forms"]["numpy_scratch"]["loc"] > 0


def test_parity_catches_loss_weights_on_the_wrong_output(small_suite: Path) -> None:
    summary = storage.load_results(small_suite).summary.query("seed == 0").set_index("variant")
    wrong = summary.loc["tests.wide_deep_mistakes:SwappedLossWeights"]
    assert wrong["status"] == "ok"
    assert not wrong["parity_pass"] and wrong["parity_steps_within"] == 0
    assert wrong["parity_max_abs_diff"] > 0.01


def test_the_report_says_which_api_the_model_needs(small_suite: Path, tmp_path: Path) -> None:
    page = build_report([small_suite], tmp_path / "report").read_text()
    assert 'id="task"' in page and "Task wide-deep: which API can express it" in page
    assert "keras_sequential cannot express it: keras.Sequential" in page
    assert (tmp_path / "report" / "output_losses.png").is_file()


def test_a_variant_of_the_other_task_is_refused_in_one_line() -> None:
    result = mlpbench("run", "--task", "wide-deep", "--variants", "tf2_eager", "--epochs", "1")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown variant 'tf2_eager' for --task wide-deep" in result.stderr
    result = mlpbench("run", "--loss-weights", "0.5,0.5", "--epochs", "1")
    assert result.returncode == 2 and "--task wide-deep" in result.stderr
    result = mlpbench("run", "--task", "wide-deep", "--loss-weights", "0,0")
    assert result.returncode == 2 and "not both 0" in result.stderr


@pytest.mark.system
def test_every_level_on_digits_and_the_report_in_chromium(tmp_path: Path) -> None:
    """The issue's first promise: `--task wide-deep --variants all` on digits exits 0, every
    variant that can express the model is ok with parity, Sequential is recorded as not."""
    out = tmp_path / "all"
    result = mlpbench(
        "run", "--task", "wide-deep", "--variants", "all", "--seeds", "0,1", "--epochs", "3",
        "--out", str(out), timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = storage.load_results(out).summary
    able = summary[summary["variant"] != "keras_sequential"]
    assert set(able["variant"]) == set(variants.WIDE_DEEP) - {"keras_sequential"}
    assert able["status"].eq("ok").all() and able["parity_pass"].astype(bool).all()
    assert summary.loc[summary["variant"] == "keras_sequential", "status"].eq("inexpressible").all()
    report = build_report([out], tmp_path / "report")
    if BROWSER is None:
        pytest.skip("no headless Chromium on PATH (Debian: apt-get install chromium)")
    shown = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", report.as_uri())
    assert "Task wide-deep: which API can express it" in shown.stdout
    assert "Loss of each output" in shown.stdout
