"""Wide & deep in float64 on Fashion-MNIST through a real `mlpbench run`: every expressible
level takes the reference's steps to 1e-9, for the total and each output's loss, over a whole
epoch (469 steps). Later epochs' orders through the harness are checked step by step in
test_wide_deep_suite.py (3 epochs, float32) and in float64 over 5-20 epochs of digits in
test_wide_deep_tf.py and test_wide_deep_keras.py. A file of its own so that the parallel tier
can run it beside the digits suite."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import variants
from harness.results import storage

from .test_cli import mlpbench

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.system
@pytest.mark.skipif(not FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_float64_fashion_mnist_parity_at_every_step(tmp_path: Path) -> None:
    out = tmp_path / "f64"
    names = ",".join(n for n in variants.WIDE_DEEP if n != "keras_sequential")
    result = mlpbench(
        "run", "--task", "wide-deep", "--variants", names, "--dataset", "fashion-mnist",
        "--dtype", "float64", "--hidden", "128,64", "--seeds", "0", "--epochs", "1",
        "--no-calibrate", "--out", str(out), timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = storage.load_results(out)
    tolerance = results.manifest["config"]["parity_tolerance"]
    assert tolerance <= 1e-9
    summary = results.summary
    assert summary["status"].eq("ok").all()
    steps = results.steps
    assert steps.groupby("variant").size().nunique() == 1  # the same steps, all of them
    assert len(steps) == len(summary) * 469
    # every step of every variant within the tolerance, for the total and each output
    assert summary["parity_steps_within"].eq(steps.groupby("variant").size().iloc[0]).all()
    assert pd.to_numeric(summary["parity_max_abs_diff"]).max() < tolerance
    assert json.loads((out / "manifest.json").read_text())["config"]["dtype"] == "float64"
