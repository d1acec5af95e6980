"""The harness-overhead tool (harness/run/overhead.py) runs and returns a sane ratio. The 2 %
target is a benchmark, not a unit test: nothing here asserts speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness.datasets import load_digits
from harness.run.overhead import measure
from harness.task import make_task

from .conftest import BATCH


def test_overhead_of_numpy_scratch():
    task = make_task(load_digits(), hidden=(32,), epochs=3, seed=0)
    result = measure("numpy_scratch", task, BATCH, rounds=3)
    # Both sides time the same work, so the ratio is near 1, but blocks of a few milliseconds on
    # a loaded shared CPU move by 3x either way (measured): the bounds only catch nonsense.
    # Counting errors are caught exactly, by the sample count and the ratio arithmetic.
    assert 0.2 < result["ratio_median"] < 5
    assert result["timed_samples_per_block"] == 2 * len(task.x_train)
    assert result["harness_driver"] == "harness.run.worker:train"
    # one ratio per timed epoch of each pair of blocks: epoch k against epoch k
    harness = np.concatenate(result["harness_epoch_samples_per_second"])
    bare = np.concatenate(result["bare_epoch_samples_per_second"])
    assert len(result["ratios"]) == 3 * 2 == len(harness) == len(bare)
    assert list(result["ratios"]) == list(harness / bare)
    assert result["ratio_median"] == np.median(result["ratios"])
    samples = 2 * len(task.x_train)  # a block's throughput is its samples over its seconds
    seconds = [
        sum(len(task.x_train) / e for e in block)
        for block in result["bare_epoch_samples_per_second"]
    ]
    assert result["bare_samples_per_second"] == pytest.approx(
        [samples / s for s in seconds], rel=1e-12
    )
    json.dumps(result)


# In a process of its own (placing threads would pin this test process' own): the bare loop,
# then the main thread's CPUs, which a round-robin placement leaves at one.
PLACED_CPUS = """
import os, sys
from harness.datasets import load_digits
from harness.run.overhead import bare_seconds
from harness.task import make_task
from variants.base import Adam
task = make_task(load_digits(), hidden=(16,), epochs=2, seed=0)
bare_seconds("tf2_function", task, Adam(), 128, sys.argv[1])
print(len(os.sched_getaffinity(0)))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: nothing to place")
def test_the_bare_loop_places_its_threads_as_the_suite_does():
    """The harness side runs the worker with the suite's placement; once the bare side never
    placed its threads, and harness/bare read the placement's effect as the harness' cost."""

    def cpus(mode: str) -> int:
        cmd = [sys.executable, "-c", PLACED_CPUS, mode]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
        return int(done.stdout.split()[-1])

    assert cpus("round-robin") == 1
    assert cpus("none") == len(os.sched_getaffinity(0))


def test_module_prints_json():
    cmd = [sys.executable, "-m", "harness.run.overhead", "--variant", "numpy_scratch"]
    cmd += ["--hidden", "16", "--epochs", "2", "--rounds", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)["numpy_scratch"]
    assert result["rounds"] == 1 and result["ratio_median"] > 0
    assert result["thread_affinity"] == "round-robin"  # as `mlpbench run` places them


@pytest.mark.system
def test_overhead_of_every_variant_lands_in_results(tmp_path):
    """`--overhead all`: one measurement per single-process variant, after the runs, in the
    manifest and in summary.csv, on the timeline and overlapping no timed window."""
    from harness.results import storage

    from .test_cli import SMALL, mlpbench

    out = tmp_path / "r"
    args = [*SMALL, "--variants", "numpy_scratch,tf2_function", "--overhead", "all"]
    result = mlpbench("run", *args, "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    results = storage.load_results(out)
    each = results.manifest["overhead_by_variant"]
    assert set(each) == {"numpy_scratch", "tf2_function"}
    for name, measured in each.items():
        # 3 ABBA pairs (after_runs.OVERHEAD_ROUNDS_EACH) of 3-epoch blocks: 2 timed epochs each
        assert measured["variant"] == name and len(measured["ratios"]) == 6, measured
        # measured with the suite's own thread placement on both sides
        assert measured["thread_affinity"] == results.manifest["config"]["thread_affinity"]
        row = results.summary.set_index("variant").loc[name]
        assert row["harness_overhead"] == pytest.approx(measured["ratio_median"], rel=1e-8)
    activities = [a["activity"] for a in results.manifest["timeline"]]
    assert activities.count("harness.run.overhead") == 2  # --no-calibrate: no reference one
    assert results.manifest["isolation"]["overlaps"] == []
