"""Speed you can trust: outside load is measured and flagged, a disturbed run can be measured
again, and no harness activity overlaps a timed window. Real suites, a real busy process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.measure import noise, timeline

from .test_cli import mlpbench

# numpy_scratch on digits at these widths: ~0.3 s per epoch, so the 5 steady epochs give the
# foreign-CPU estimate a standard error of a few hundredths of a core
WIDE = ["--variants", "numpy_scratch", "--hidden", "2048,2048", "--epochs", "6", "--seeds", "0"]
WIDE += ["--no-calibrate"]

# A CPU-bound process that spins until the results folder says the first run finished.
HOG = """
import sys, time
from pathlib import Path
summary = Path(sys.argv[1]) / "summary.csv"
while not (summary.exists() and ",ok," in summary.read_text()):
    t = time.perf_counter()
    while time.perf_counter() - t < 0.01:
        pass
"""

pytestmark = pytest.mark.skipif(noise.read().busy is None, reason="no /proc/stat here")


def summary(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "summary.csv")


@pytest.mark.system
def test_a_run_beside_a_busy_process_is_flagged_noisy_and_measured_again(tmp_path):
    out = tmp_path / "noisy"
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(out)])
    try:
        result = mlpbench("run", *WIDE, "--retry-noisy", "1", "--out", str(out), timeout=300)
    finally:
        hog.kill()
        hog.wait()
    assert result.returncode == 0, result.stderr
    printed = result.stdout + result.stderr
    assert "measuring again what outside load disturbed: numpy_scratch seed 0" in printed
    row = summary(out).iloc[0]
    # the retry ran after the busy process stopped: measured quiet, and says it took 2 runs
    assert row["attempts"] == 2
    assert not row["noisy"]
    assert row["foreign_cpu"] < noise.NOISY_CORES + 3 * row["foreign_cpu_se"]


@pytest.mark.system
def test_the_same_run_without_retry_keeps_the_noisy_flag(tmp_path):
    out = tmp_path / "kept"
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(out / "never")])  # spins throughout
    try:
        result = mlpbench("run", *WIDE, "--out", str(out), timeout=300)
    finally:
        hog.kill()
        hog.wait()
    assert result.returncode == 0, result.stderr
    row = summary(out).iloc[0]
    assert row["noisy"] and row["attempts"] == 1
    assert row["foreign_cpu"] > 0.5  # one spinning process is about one core
    epochs = pd.read_csv(out / "epochs.csv")
    assert epochs["foreign_cpu_seconds"].iloc[1:].sum() > 0.5 * epochs["seconds"].iloc[1:].sum()


@pytest.mark.system
def test_harness_activities_never_overlap_a_timed_window(tmp_path):
    out = tmp_path / "suite"
    args = ["--variants", "numpy_scratch,tf2_function", "--hidden", "16", "--epochs", "3"]
    result = mlpbench("run", *args, "--seeds", "0,1", "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    names = [a["activity"] for a in manifest["timeline"]]
    assert names[0] == "warm server start"  # ready before the first run
    assert {"harness.measure.calibrate", "harness.run.overhead"} <= set(names)
    assert manifest["isolation"] == {"timed_windows": 12, "overlaps": []}
    # the same check, recomputed from what the folder stores, and shown able to fire
    epochs = pd.read_csv(out / "epochs.csv")
    windows = list(zip(epochs["window_start"], epochs["window_end"], strict=True))
    assert timeline.overlaps(windows, manifest["timeline"]) == []
    start, end = windows[3]
    inside = {"activity": "calibration", "start": (start + end) / 2, "end": end + 1}
    assert timeline.overlaps(windows, [*manifest["timeline"], inside]) == ["calibration"]
    assert not summary(out)["contended"].any()


@pytest.mark.system
def test_parallel_runs_are_marked_contended(tmp_path):
    out = tmp_path / "jobs"
    args = ["--variants", "numpy_scratch", "--hidden", "16", "--epochs", "2", "--seeds", "0,1"]
    result = mlpbench("run", *args, "--jobs", "2", "--no-calibrate", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert summary(out)["contended"].all()
