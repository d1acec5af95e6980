"""FLOP counting and the roofline fraction (harness/measure/roofline.py), and the GEMM calibration
they are read against (harness/measure/calibrate.py); nothing here depends on how fast the machine
is."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from harness.measure.calibrate import (
    BACKENDS,
    CHAINS_PER_CALL,
    calibrate,
    combine,
    gemm_operands,
    numpy_gemm_step,
    tensorflow_gemm_step,
)
from harness.measure.roofline import flops_per_sample, gemm_fraction, gemm_shapes
from variants.base import ModelSpec

TINY = ModelSpec(input_size=3, hidden=(4,), num_classes=2)


def test_flops_per_sample_counted_by_hand():
    # 3-4-2. Forward: 2*3*4 + 2*4*2 = 24 + 16 = 40. Weight gradients: the same 40.
    # Input gradients: only the second layer's, 2*4*2 = 16 (the first layer's input is data).
    assert flops_per_sample(TINY) == 40 + 40 + 16


def test_flops_per_sample_of_the_default_task():
    # 784-512-256-10, as worked out in the docstring.
    forward = 2 * (784 * 512 + 512 * 256 + 256 * 10)
    assert forward == 1_070_080
    assert flops_per_sample(ModelSpec(784, (512, 256), 10)) == 3 * forward - 2 * 784 * 512


def test_gemm_shapes_are_the_steps_products():
    assert gemm_shapes(TINY, batch_size=5) == [
        ("forward", 5, 3, 4),
        ("forward", 5, 4, 2),
        ("weight_grad", 4, 5, 2),
        ("input_grad", 5, 2, 4),
        ("weight_grad", 3, 5, 4),
    ]
    total = sum(2 * m * k * n for _, m, k, n in gemm_shapes(TINY, batch_size=5))
    assert total == 5 * flops_per_sample(TINY)


def test_gemm_fraction_arithmetic():
    # 1000 samples/s x 1e6 FLOPs = 1 GFLOP/s, against a 10 GFLOP/s peak.
    assert gemm_fraction(1000.0, 1_000_000, 10.0) == pytest.approx(0.1)
    assert gemm_fraction(0.0, 1_000_000, 10.0) == 0.0


def test_calibrate_returns_positive_finite_throughputs():
    result = calibrate(TINY, batch_size=8, min_seconds=0.03, repeats=3, warmup_seconds=0.01)
    for key in ("numpy_gflops", "tensorflow_gflops", "xla_gflops", "peak_gflops"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    best = max(BACKENDS, key=lambda b: result[f"{b}_gflops"])
    assert result["peak_gflops"] == result[f"{best}_gflops"] and result["peak_backend"] == best
    assert result["flops_per_sample"] == flops_per_sample(TINY)
    for backend in BACKENDS:
        samples = result["samples"][backend]
        assert len(samples) == 3 and all(s > 0 and math.isfinite(s) for s in samples)
    json.dumps(result)  # the runner stores it in the manifest


def test_calibrate_numpy_only_needs_no_tensorflow():
    result = calibrate(TINY, batch_size=8, min_seconds=0.03, repeats=3, backends=("numpy",))
    assert result["tensorflow_gflops"] is None
    assert result["peak_gflops"] == result["numpy_gflops"]


def calibration_json(module: str) -> dict:
    cmd = [sys.executable, "-m", module, "--input-size", "8", "--hidden", "6,4"]
    cmd += ["--batch-size", "4", "--min-seconds", "0.05", "--repeats", "3", "--backends", "numpy"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_module_prints_the_calibration_as_json():
    result = calibration_json("harness.measure.calibrate")
    assert result["layer_sizes"] == [8, 6, 4, 10]
    assert result["flops_per_sample"] == flops_per_sample(ModelSpec(8, (6, 4), 10))
    assert result["peak_gflops"] > 0


def test_the_model_and_the_calibration_import_without_tensorflow():
    """Reports import the model, the runner the calibration's BACKENDS and combine: neither may
    load TensorFlow, which the calibration imports only in the process that times it."""
    code = "import sys, harness.measure.roofline, harness.measure.calibrate\n"
    code += "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_combine_merges_backends_measured_apart():
    numpy_part = {
        "numpy_gflops": 80.0,
        "tensorflow_gflops": None,
        "peak_gflops": 80.0,
        "peak_backend": "numpy",
        "flops_per_sample": 10,
        "samples": {"numpy": [79.0, 81.0]},
    }
    tf_part = {
        "numpy_gflops": None,
        "tensorflow_gflops": 95.0,
        "peak_gflops": 95.0,
        "peak_backend": "tensorflow",
        "flops_per_sample": 10,
        "samples": {"tensorflow": [94.0, 96.0]},
    }
    out = combine([numpy_part, tf_part])
    assert out["numpy_gflops"] == 80.0 and out["tensorflow_gflops"] == 95.0
    assert out["peak_gflops"] == 95.0 and out["peak_backend"] == "tensorflow"
    assert out["samples"] == {"numpy": [79.0, 81.0], "tensorflow": [94.0, 96.0]}


@pytest.mark.parametrize("jit_compile", [False, True])
def test_tensorflow_chain_computes_the_numpy_products(jit_compile):
    """The traced loop (and its XLA form) runs the real chain: its last weight gradient equals
    NumPy's on the same batch, so no product was folded away or computed on other data."""
    x, kernels = gemm_operands(TINY, batch_size=8)
    step, _ = tensorflow_gemm_step(x, kernels, jit_compile=jit_compile)
    last = np.roll(x, CHAINS_PER_CALL - 1, axis=0)  # the batch of the loop's last chain
    numpy_step = numpy_gemm_step(last, kernels)
    np.testing.assert_allclose(step(), numpy_step()[0], rtol=1e-4, atol=1e-5)
