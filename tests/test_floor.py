"""The floor of a whole training step (harness/measure/roofline.py: its GEMMs at the measured
peak plus the bytes of everything else at the measured bandwidth), the bandwidth measurement
(harness/measure/calibrate.py), both fractions recomputed from a results folder alone
(harness/results/scores.py), and what each Keras variant compiled (harness/run/worker.py)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.measure import roofline
from harness.measure.calibrate import calibrate, last_level_cache_bytes, memory_bandwidth
from harness.results import scores, storage
from variants.base import ModelSpec

from .test_cli import ROOT, mlpbench

TINY = ModelSpec(input_size=3, hidden=(4,), num_classes=2)  # 3*4 + 4 + 4*2 + 2 = 26 parameters
DEFAULT = ModelSpec(input_size=784, hidden=(512, 256), num_classes=10)
KERAS_FIT_JIT_STEPS = 1 << 16  # variants/keras_fit_fast.py MAX_STEPS: one execution per epoch


@pytest.mark.parametrize(
    ("optimizer", "dtype", "optimizer_bytes"),
    [
        ("sgd", "float32", 3 * 4 * 26),  # read w, g; write w
        ("momentum", "float32", 5 * 4 * 26),  # read w, g, v; write w, v
        ("adam", "float32", 7 * 4 * 26),  # read w, g, m, v; write w, m, v: 28 B per parameter
        ("sgd", "float64", 3 * 8 * 26),
        ("adam", "float64", 7 * 8 * 26),
    ],
)
def test_step_bytes_counted_by_hand(optimizer, dtype, optimizer_bytes):
    spec = ModelSpec(input_size=3, hidden=(4,), num_classes=2, dtype=dtype)
    s = 8 if dtype == "float64" else 4
    model = roofline.step_bytes(spec, batch_size=5, optimizer=optimizer)
    assert model["per_sample"] == {
        "forward_bias_relu": 2 * 4 * s,  # read z, write relu(z + b): 4 hidden units
        "loss": 2 * 2 * s,  # read the 2 logits, write their gradient
        "backward_relu": 3 * 4 * s,  # read da and a, write dz
    }
    assert model["per_step"] == {"bias": 2 * (4 + 2) * s, "optimizer": optimizer_bytes}
    per_sample = (2 + 3) * 4 * s + 2 * 2 * s  # the hidden layer's two parts, the loss
    assert roofline.bytes_per_step(model) == 5 * per_sample + 2 * 6 * s + optimizer_bytes
    assert (model["batch_size"], model["dtype"], model["optimizer"]) == (5, dtype, optimizer)


def test_step_bytes_of_the_default_task_with_adam():
    """784-512-256-10, Adam, float32: 28 bytes per parameter, about 15 MB per step."""
    assert DEFAULT.param_count == 535_818
    model = roofline.step_bytes(DEFAULT, batch_size=128, optimizer="adam")
    assert model["per_step"]["optimizer"] == 28 * 535_818 == 15_002_904
    assert sum(model["per_sample"].values()) == 5 * 4 * (512 + 256) + 2 * 4 * 10 == 15_440
    assert roofline.bytes_per_step(model) == 128 * 15_440 + 2 * 4 * 778 + 15_002_904
    assert roofline.bytes_per_step(model, 512) == 512 * 15_440 + 6_224 + 15_002_904


def test_floor_arithmetic_counts_the_short_last_step():
    """10 samples in batches of 4: 3 steps (4, 4, 2), each paying the per-step bytes."""
    model = {"batch_size": 4, "per_sample": {"a": 100}, "per_step": {"b": 1000}}
    # GEMMs: 10 samples x 1e9 FLOPs at 10 GFLOP/s = 1 s; bytes: 10*100 + 3*1000 at 1 GB/s
    seconds = roofline.floor_seconds(10, 1_000_000_000, 10.0, model, 1.0)
    assert seconds == pytest.approx(1.0 + 4000 / 1e9)
    # 5 samples/s: 2 s per epoch, against a floor of about 1 s
    assert roofline.floor_fraction(5.0, 10, 1_000_000_000, 10.0, model, 1.0) == pytest.approx(
        5.0 * seconds / 10
    )
    # the whole-step floor is never below the GEMM-only one
    assert roofline.floor_fraction(5.0, 10, 10**9, 10.0, model, 1.0) > roofline.gemm_fraction(
        5.0, 10**9, 10.0
    )


def test_bandwidth_is_plausible_and_stored_by_the_calibration():
    memory = memory_bandwidth("float64", repeats=3)
    assert 0.5 < memory["bandwidth_gbs"] < 5000  # GB/s: from a slow VM to HBM
    assert memory["bandwidth_gbs"] == max(memory["bandwidth"]["samples_gbs"])
    details = memory["bandwidth"]
    assert details["dtype"] == "float64" and details["method"] == "copy"
    cache = last_level_cache_bytes()
    if cache:  # both arrays together well beyond the cache, within the memory bound
        assert 2 * details["array_bytes"] >= min(4 * cache, 2 * 256 << 20)
    result = calibrate(TINY, 8, min_seconds=0.05, repeats=3, backends=("numpy",), optimizer="sgd")
    assert result["bandwidth_gbs"] > 0 and result["bandwidth"]["dtype"] == "float32"
    assert result["step_bytes"] == roofline.step_bytes(TINY, 8, "sgd")
    json.dumps(result)  # it goes into the manifest as it is


def _scored(calibration: dict | None) -> dict:
    """A manifest and epoch rows of one run: 2 epochs of 1000 samples in batches of 100, the
    steady one taking 0.5 s (2000 samples/s)."""
    manifest = {
        "config": {"batch_size": 100, "warmup_epochs": 1},
        "tasks": {"0": {"n_train": 1000, "flops_per_sample": 2_000_000}},
        "calibration": calibration,
    }
    epochs = pd.DataFrame(
        {
            "variant": ["v", "v"],
            "seed": [0, 0],
            "epoch": [1, 2],
            "train_loss": [1.0, 0.9],
            "test_loss": [1.0, 0.9],
            "test_accuracy": [0.5, 0.6],
            "seconds": [2.0, 0.5],
            "foreign_cpu_seconds": [0.0, 0.0],
            "own_cpu_seconds": [2.0, 0.5],
            "idle_cpu_seconds": [0.0, 0.0],
        }
    )
    runs = [{"variant": "v", "seed": 0, "status": "ok"}]
    steps = storage.empty_frame(storage.STEPS_COLUMNS)
    return scores.summarize(manifest, runs, steps, epochs, {}).iloc[0].to_dict()


def test_both_fractions_come_from_the_manifest_alone():
    model = {"batch_size": 100, "per_sample": {"x": 1000}, "per_step": {"opt": 1_000_000}}
    row = _scored({"peak_gflops": 10.0, "bandwidth_gbs": 2.0, "step_bytes": model})
    # 2000 samples/s x 2e6 FLOPs = 4 GFLOP/s of 10
    assert row["gemm_fraction"] == pytest.approx(0.4)
    # floor of the epoch: 1000 x 2e6 / 10e9 = 0.2 s of GEMMs, (1000 x 1000 + 10 x 1e6) B at
    # 2 GB/s = 0.0055 s; the epoch took 0.5 s
    assert row["floor_fraction"] == pytest.approx((0.2 + 0.0055) / 0.5)
    # the constants are the manifest's: another bandwidth, another fraction
    slower = _scored({"peak_gflops": 10.0, "bandwidth_gbs": 0.5, "step_bytes": model})
    assert slower["floor_fraction"] == pytest.approx((0.2 + 0.022) / 0.5)
    # a calibration from before the bandwidth was measured: the GEMM fraction only
    old = _scored({"peak_gflops": 10.0})
    assert old["gemm_fraction"] == pytest.approx(0.4) and pd.isna(old["floor_fraction"])


@pytest.fixture(scope="module")
def keras_suite(tmp_path_factory) -> Path:
    """The reference and two Keras `fit` variants, one compiled by XLA in executions of a whole
    epoch, one as Keras compiles it by default; with the calibration."""
    out = tmp_path_factory.mktemp("floor") / "suite"
    variants = "numpy_scratch,keras_fit_jit,keras_sequential"
    args = ["--variants", variants, "--hidden", "16", "--epochs", "2", "--seeds", "0"]
    result = mlpbench("run", *args, "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_keras_variants_record_what_they_compiled(keras_suite):
    summary = pd.read_csv(keras_suite / "summary.csv").drop_duplicates("variant")
    summary = summary.set_index("variant")
    assert summary.loc["keras_fit_jit", "jit_compile"] == True  # noqa: E712 (read as bool)
    assert summary.loc["keras_sequential", "jit_compile"] == False  # noqa: E712
    assert summary.loc["keras_fit_jit", "steps_per_execution"] == KERAS_FIT_JIT_STEPS
    assert summary.loc["keras_sequential", "steps_per_execution"] == 1  # Keras' default
    assert (
        summary.loc[["numpy_scratch"], ["jit_compile", "steps_per_execution"]]
        .isna()
        .to_numpy()
        .all()
    )
    runs = {
        r["variant"]: r for r in json.loads((keras_suite / "manifest.json").read_text())["runs"]
    }
    assert runs["keras_fit_jit"]["jit_compile"] is True
    assert runs["keras_sequential"]["steps_per_execution"] == 1
    assert runs["numpy_scratch"]["jit_compile"] is None
    # and they read back typed, as the report sees them
    read = storage.load_results(keras_suite).summary.drop_duplicates("variant").set_index("variant")
    assert str(read["jit_compile"].dtype) == "boolean"
    assert (
        read.loc["keras_fit_jit", "jit_compile"] and not read.loc["keras_sequential", "jit_compile"]
    )
    assert read.loc["keras_fit_jit", "steps_per_execution"] == KERAS_FIT_JIT_STEPS


def test_a_suite_stores_the_floor_and_recomputes_it_from_its_folder(keras_suite, tmp_path):
    results = storage.load_results(keras_suite)
    calibration = results.manifest["calibration"]
    assert "error" not in calibration, calibration
    assert calibration["bandwidth_gbs"] > 0
    task = results.manifest["tasks"]["0"]
    spec = ModelSpec(input_size=64, hidden=(16,), num_classes=10)
    assert calibration["step_bytes"] == roofline.step_bytes(spec, 128, "adam")
    summary = results.summary[results.summary["status"] == "ok"]
    floor = roofline.floor_seconds(
        task["n_train"],
        task["flops_per_sample"],
        calibration["peak_gflops"],
        calibration["step_bytes"],
        calibration["bandwidth_gbs"],
    )
    by_hand = summary["samples_per_second"] * floor / task["n_train"]
    assert np.allclose(summary["floor_fraction"], by_hand, rtol=1e-6)
    assert (summary["floor_fraction"] > summary["gemm_fraction"]).all()  # the floor is higher

    # another folder: the same rows, its manifest's bandwidth halved; only its floor moves
    copy = tmp_path / "copy"
    shutil.copytree(keras_suite, copy, ignore=shutil.ignore_patterns(".lock", "logs"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["calibration"]["bandwidth_gbs"] /= 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    again = storage.load_results(copy)
    sources = {
        v: {"api_level": a, "loc": n, "sha256": h}
        for v, a, n, h in summary[["variant", "api_level", "loc", "source_sha256"]].itertuples(
            index=False
        )
    }
    rescored = scores.summarize(again.manifest, again.manifest["runs"], again.steps,
                                again.epochs, sources)  # fmt: skip
    rescored = rescored[rescored["status"] == "ok"]
    memory = floor - task["flops_per_sample"] * task["n_train"] / (calibration["peak_gflops"] * 1e9)
    expected = summary["samples_per_second"].to_numpy() * (floor + memory) / task["n_train"]
    assert np.allclose(rescored["floor_fraction"].to_numpy(float), expected, rtol=1e-6)
    assert np.allclose(rescored["gemm_fraction"], summary["gemm_fraction"], rtol=1e-8)


def test_a_folder_from_before_the_rename_reads_its_gemm_fraction(keras_suite, tmp_path):
    """summary.csv's `roofline_fraction` of older folders is read as `gemm_fraction`."""
    old = tmp_path / "old"
    shutil.copytree(keras_suite, old, ignore=shutil.ignore_patterns(".lock", "logs"))
    frame = pd.read_csv(old / "summary.csv")
    written = frame["gemm_fraction"].to_numpy(float)
    frame = frame.drop(columns=["floor_fraction", "jit_compile", "steps_per_execution"])
    frame.rename(columns={"gemm_fraction": "roofline_fraction"}).to_csv(
        old / "summary.csv", index=False
    )
    read = storage.load_results(old).summary
    assert list(read.columns) == storage.SUMMARY_COLUMNS
    assert np.allclose(read["gemm_fraction"].to_numpy(float), written, equal_nan=True)
    assert read["floor_fraction"].isna().all() and read["jit_compile"].isna().all()
    assert not math.isnan(written[0])


def test_the_calibration_command_prints_the_byte_model():
    """What the runner stores is what `python -m harness.measure.calibrate` prints."""
    argv = ["--input-size", "3", "--hidden", "4", "--num-classes", "2", "--batch-size", "5"]
    argv += ["--backends", "numpy", "--min-seconds", "0.05", "--repeats", "3"]
    argv += ["--optimizer", "momentum", "--dtype", "float64"]
    result = subprocess.run(
        [sys.executable, "-m", "harness.measure.calibrate", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    spec = ModelSpec(input_size=3, hidden=(4,), num_classes=2, dtype="float64")
    assert printed["step_bytes"] == roofline.step_bytes(spec, 5, "momentum")
    assert printed["bandwidth"]["dtype"] == "float64" and printed["bandwidth_gbs"] > 0
