"""Hostile input, third round: gates that must not pass on no data, folders that cannot be
read or written, names and values a new user types. Each case once failed; each must now end
in one line saying what is wrong and how to fix it (exit 2), or in the gate's honest verdict."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from .test_bench_gate import assert_one_line_error as assert_gate_error
from .test_cli import ROOT, assert_one_line_error, mlpbench
from .test_compare import SMALL_A

BASELINE = ROOT / "tests" / "benchmarks" / "baseline" / "short.json"


# -- bench-compare: a benchmark with no valid timings is bad input, not "same" ----------------


def _bench_file(tmp_path: Path, name: str, change) -> Path:
    data = json.loads(BASELINE.read_text())
    change(data["benchmarks"][0])
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


NO_TIMINGS = {
    "empty data": lambda b: b["stats"].__setitem__("data", []),
    "all NaN": lambda b: b["stats"].__setitem__("data", [math.nan] * 20),
    "stats null": lambda b: b.__setitem__("stats", None),
    "text timings": lambda b: b["stats"].__setitem__("data", ["a", "b"]),
    "negative timings": lambda b: b["stats"].__setitem__("data", [-t for t in b["stats"]["data"]]),
    "base_seconds empty": lambda b: b["extra_info"].__setitem__("base_seconds", []),
}


@pytest.mark.parametrize("damage", list(NO_TIMINGS))
def test_bench_compare_refuses_a_benchmark_with_no_valid_timings(damage, tmp_path):
    """Once judged "same" (or "faster", or a ValueError traceback): a gate passed on no data."""
    new = _bench_file(tmp_path, "new.json", NO_TIMINGS[damage])
    name = json.loads(new.read_text())["benchmarks"][0]["name"]
    files = [str(new)] if damage.startswith("base_seconds") else [str(BASELINE), str(new)]
    result = mlpbench("bench-compare", *files)
    assert_gate_error(result, f"{new}: benchmark {name}")
    assert "no valid timings" in result.stderr


# -- compare: nothing compared is not "no variant is slower" ----------------------------------


def _results_copy(tmp_path: Path, name: str, summary_change=None, runs_change=None) -> Path:
    """A copy of the small_a fixture with its summary.csv and manifest runs edited."""
    folder = tmp_path / name
    shutil.copytree(SMALL_A, folder)
    if summary_change:
        frame = pd.read_csv(folder / "summary.csv", dtype=str, keep_default_na=False)
        summary_change(frame)
        frame.to_csv(folder / "summary.csv", index=False)
    if runs_change:
        manifest = json.loads((folder / "manifest.json").read_text())
        for run in manifest["runs"]:
            runs_change(run)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _all_noisy(frame: pd.DataFrame) -> None:
    frame["noisy"] = "True"


def _all_failed(frame: pd.DataFrame) -> None:
    frame["status"] = "failed"
    frame["error"] = "failed: RuntimeError: boom"


def _run_failed(run: dict) -> None:
    run.update(status="failed", error="failed: RuntimeError: boom")


def test_compare_fails_when_b_finished_nothing_and_a_was_all_noisy(tmp_path):
    """Once 'no data' for every variant, 'no variant is slower', exit 0."""
    a = _results_copy(tmp_path, "a", _all_noisy)
    b = _results_copy(tmp_path, "b", _all_failed, _run_failed)
    result = mlpbench("compare", str(a), str(b))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no variant is slower" not in result.stdout
    assert "with no finished run in B" in result.stdout


def test_compare_with_nothing_comparable_is_exit_2(tmp_path):
    """Both sides finished but every run of A was noisy: nothing was compared, so the gate
    cannot say 'not slower'."""
    a = _results_copy(tmp_path, "a", _all_noisy)
    result = mlpbench("compare", str(a), str(SMALL_A))
    assert_one_line_error(result)
    assert "nothing to compare" in result.stderr and "noisy" in result.stderr


def test_compare_of_sets_sharing_no_variant_is_exit_2(tmp_path):
    a = _results_copy(tmp_path, "a")
    for name in ("summary.csv", "epochs.csv", "steps.csv"):
        frame = pd.read_csv(a / name, dtype=str, keep_default_na=False)
        frame["variant"] = "other_" + frame["variant"]
        frame.to_csv(a / name, index=False)
    manifest = json.loads((a / "manifest.json").read_text())
    for run in manifest["runs"]:
        run["variant"] = "other_" + run["variant"]
    (a / "manifest.json").write_text(json.dumps(manifest))
    result = mlpbench("compare", str(a), str(SMALL_A))
    assert_one_line_error(result)
    assert "share no variant" in result.stderr


# -- a CSV cut short, in a folder whose manifest says every run finished ----------------------


def _cut(folder: Path, name: str, keep) -> Path:
    """Keep what `keep(text)` returns of folder/name."""
    file = folder / name
    file.write_text(keep(file.read_text()))
    return file


TRUNCATIONS = {
    # the last run's last epoch loses its last two steps
    "steps.csv on a row boundary": ("steps.csv", lambda t: "".join(t.splitlines(True)[:-2])),
    # the last run's last epoch entirely
    "steps.csv on an epoch boundary": ("steps.csv", lambda t: "".join(t.splitlines(True)[:-4])),
    "steps.csv mid-row": ("steps.csv", lambda t: t[:-5]),
    "epochs.csv with only its header": ("epochs.csv", lambda t: t.splitlines(True)[0]),
    "epochs.csv mid-row": ("epochs.csv", lambda t: t[:-7]),
}


@pytest.mark.parametrize("case", list(TRUNCATIONS))
@pytest.mark.parametrize("command", ["report", "export-tensorboard"])
def test_a_csv_cut_short_is_named(case, command, tmp_path):
    """Once a report of partial curves, exit 0."""
    name, keep = TRUNCATIONS[case]
    folder = _results_copy(tmp_path, "cut")
    file = _cut(folder, name, keep)
    out = str(tmp_path / "out")
    args = (
        ["report", str(folder), "--out", out]
        if command == "report"
        else [command, str(folder), out]
    )
    result = mlpbench(*args)
    assert_one_line_error(result)
    assert str(file) in result.stderr and "cut short" in result.stderr
