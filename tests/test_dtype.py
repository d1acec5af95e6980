"""`--dtype float64`: the task handed over in float64, the worker holding variants to it, the
manifest recording it with the tolerance parity was judged by, and the roofline measured in it.
(That every variant then matches the reference in float64 is tests/test_parity.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli.options import build_parser
from harness.cli.validate import make_config
from harness.datasets import load_digits
from harness.measure.calibrate import calibrate
from harness.results import scores
from harness.run import memory
from harness.run.config import SuiteError, check_resumable
from harness.run.worker import ProtocolError, _check_weights
from harness.task import Task, make_task
from variants.base import Adam, ModelSpec
from variants.numpy_scratch import NumpyScratch

from .test_cli import SMALL, assert_one_line_error, mlpbench


def config(tmp_path: Path, *args: str):
    parsed = build_parser().parse_args(["run", "--out", str(tmp_path / "r"), *args])
    return make_config(parsed, [])


def test_float64_task_holds_the_same_draws_in_float64_and_saves_its_dtype(tmp_path):
    digits = load_digits()
    f32 = make_task(digits, hidden=(8,), epochs=2, seed=0)
    f64 = make_task(digits, hidden=(8,), epochs=2, seed=0, dtype="float64")
    assert f32.spec.dtype == "float32" and f64.spec.dtype == "float64"
    assert f64.x_train.dtype == f64.x_test.dtype == np.float64
    assert f64.y_train.dtype == np.int64
    assert all(w.dtype == np.float64 for w in f64.init_weights)
    np.testing.assert_array_equal(f64.x_train.astype(np.float32), f32.x_train)
    for w64, w32 in zip(f64.init_weights, f32.init_weights, strict=True):
        np.testing.assert_array_equal(w64.astype(np.float32), w32)
    assert f64.fingerprint() != f32.fingerprint()

    f64.save(tmp_path / "task.npz")
    loaded = Task.load(tmp_path / "task.npz")
    assert loaded.spec == f64.spec
    assert loaded.fingerprint() == f64.fingerprint()


def test_a_float64_run_refuses_weights_in_another_dtype():
    task = make_task(load_digits(), hidden=(8,), epochs=1, seed=0, dtype="float64")
    _check_weights(task.init_weights, task)
    with pytest.raises(ProtocolError, match="float32 weights; this run trains in float64"):
        _check_weights([w.astype(np.float32) for w in task.init_weights], task)
    f32 = make_task(load_digits(), hidden=(8,), epochs=1, seed=0)
    _check_weights([w.astype(np.float64) for w in f32.init_weights], f32)  # as it always was


def test_the_manifest_records_a_dtype_other_than_float32_and_the_tolerance(tmp_path):
    f32, f64 = config(tmp_path).to_manifest(), config(tmp_path, "--dtype", "float64").to_manifest()
    assert "dtype" not in f32  # so that folders from before the option still resume
    assert f32["parity_tolerance"] == scores.PARITY_TOLERANCE
    assert f64["dtype"] == "float64"
    assert f64["parity_tolerance"] == scores.PARITY_TOLERANCE_FLOAT64 <= 1e-9
    assert scores.recorded_tolerance(f64) == scores.PARITY_TOLERANCE_FLOAT64
    older = {k: v for k, v in f32.items() if k != "parity_tolerance"}  # before it was recorded
    assert scores.recorded_tolerance(older) == scores.PARITY_TOLERANCE


def test_resume_keeps_the_dtype_and_accepts_folders_from_before_it(tmp_path):
    f32 = config(tmp_path)
    older = {k: v for k, v in f32.to_manifest().items() if k != "parity_tolerance"}
    check_resumable(f32, {"config": older})
    with pytest.raises(SuiteError, match="dtype='float32', not 'float64'"):
        check_resumable(config(tmp_path, "--dtype", "float64"), {"config": older})


def test_memory_estimate_counts_eight_bytes_a_number_in_float64():
    shape = memory.Shape(60000, 10000, 784, (512, 256), 10, 128, 2, runs=1, processes=1)
    f64 = memory.Shape(**{**shape.__dict__, "dtype": "float64"})
    grown = memory.worker_bytes(f64) - memory.worker_bytes(shape)
    assert grown == memory.worker_bytes(shape) - memory.RUNTIME


def test_roofline_is_measured_and_labelled_in_the_dtype():
    tiny = ModelSpec(input_size=3, hidden=(4,), num_classes=2)
    for spec in (tiny, ModelSpec(3, (4,), 2, dtype="float64")):
        result = calibrate(spec, batch_size=8, min_seconds=0.03, repeats=3, backends=("numpy",))
        assert result["dtype"] == spec.dtype
        assert result["numpy_gflops"] > 0


@pytest.mark.system
def test_run_and_sweep_record_float64_end_to_end(tmp_path):
    out = tmp_path / "run"
    args = [*SMALL, "--variants", "numpy_scratch"]
    done = mlpbench("run", *args, "--dtype", "float64", "--out", str(out))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["dtype"] == "float64"
    assert manifest["config"]["parity_tolerance"] == scores.PARITY_TOLERANCE_FLOAT64
    # steps.csv keeps float64 losses whole (float32's 9 digits would be ~1e-9 off)
    steps = pd.read_csv(out / "steps.csv")
    stored = steps[(steps["variant"] == "numpy_scratch") & (steps["seed"] == 0)]["loss"]
    task = make_task(load_digits(), hidden=(16,), epochs=2, seed=0, dtype="float64")
    reference = NumpyScratch()
    reference.build(task.spec, Adam(), task.init_weights)
    trained = [reference.train_epoch(*task.epoch_data(e), 128) for e in range(2)]
    np.testing.assert_allclose(stored, np.concatenate(trained), rtol=0, atol=1e-13)
    # the same folder resumes only in float64
    assert_one_line_error(mlpbench("run", *args, "--resume", "--out", str(out)))
    again = mlpbench("run", *args, "--dtype", "float64", "--resume", "--out", str(out))
    assert again.returncode == 0, again.stderr

    sweep = tmp_path / "sweep"
    done = mlpbench(
        "sweep", *args, "--batch-sizes", "64", "--dtype", "float64", "--out", str(sweep)
    )
    assert done.returncode == 0, done.stderr
    point = json.loads((sweep / "bs64" / "manifest.json").read_text())
    assert point["config"]["dtype"] == "float64"


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_unsupported_dtype_is_a_one_line_error(command, tmp_path):
    sizes = ["--batch-sizes", "64"] if command == "sweep" else []
    out = tmp_path / "r"
    result = mlpbench(command, *SMALL, *sizes, "--dtype", "float16", "--out", str(out))
    assert_one_line_error(result)
    assert "float16" in result.stderr and "float64" in result.stderr
    assert not out.exists()
