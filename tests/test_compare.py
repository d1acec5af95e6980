"""`mlpbench compare` and the statistics under it: exit statuses, thresholds, bad input,
the HTML page, and the tests in harness/measure/stats.py against direct scipy computations."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.cli.report import parse_threshold
from harness.measure import stats
from harness.report.compare import compare_dirs, write_html

FIXTURES = Path(__file__).parent / "fixtures" / "results"
SMALL_A, SMALL_B = FIXTURES / "small_a", FIXTURES / "small_b"
HOSTILE = "<script>alert(1)</script>"


def mlpbench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlpbench: error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


# --- the command --------------------------------------------------------------------------


def test_significant_slowdown_exits_non_zero() -> None:
    result = mlpbench("compare", SMALL_A, SMALL_B, "--threshold", "5%")
    assert result.returncode == 1, result.stderr
    assert "slower by more than 5% at 95% confidence: tf2_function" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "tf2_function" in line)
    assert "slower" in row and "0.68×" in row


def test_identical_sets_exit_zero() -> None:
    result = mlpbench("compare", SMALL_A, SMALL_A)
    assert result.returncode == 0, result.stderr
    assert "no variant is slower" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(
        mlpbench("compare", SMALL_A, tmp_path / "missing"), "no such results directory"
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(mlpbench("compare", tmp_path / "empty", SMALL_B), "not a results")
    future = tmp_path / "future"
    shutil.copytree(SMALL_A, future)
    manifest = json.loads((future / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (future / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(mlpbench("compare", SMALL_A, future), "schema_version 99")
    assert_one_line_error(
        mlpbench("compare", SMALL_A, SMALL_B, "--threshold", "5"), "--threshold", "5%"
    )
    assert_one_line_error(mlpbench("report", tmp_path / "missing"), "no such results directory")


# --- the logic ----------------------------------------------------------------------------


def test_only_the_slowed_variant_regresses() -> None:
    result = compare_dirs(SMALL_A, SMALL_B, threshold=0.05)
    verdicts = {c.variant: c.verdict for c in result.changes}
    assert verdicts["tf2_function"] == "slower"
    assert [c.variant for c in result.regressions] == ["tf2_function"]
    assert set(verdicts.values()) <= {"slower", "not resolved"}
    tf2 = next(c for c in result.changes if c.variant == "tf2_function")
    assert tf2.throughput.ratio == pytest.approx(0.7, abs=0.05)
    # the whole two-level interval lies below 1 - threshold: 3 seeds against 3 resolve 30 %
    assert tf2.throughput.speed.high < 0.95 and tf2.throughput.speed.processes == (3, 3)
    # while the per-process test cannot go below 0.1 with 3 against 3, so it does not decide
    assert tf2.throughput.test.p_value == pytest.approx(0.1)
    assert tf2.runs_a == "3/3" and tf2.throughput.a.n == 6  # 3 seeds x epochs 2..3


def test_a_slowdown_within_the_threshold_is_not_a_regression() -> None:
    result = compare_dirs(SMALL_A, SMALL_B, threshold=0.40)
    assert result.regressions == []
    # resolved (the interval lies below 1), but not wholly beyond the 40 % threshold
    assert {c.variant: c.verdict for c in result.changes}["tf2_function"] == "within threshold"


def test_identical_sets_have_no_change() -> None:
    result = compare_dirs(SMALL_A, SMALL_A)
    assert all(c.verdict == "not resolved" for c in result.changes)
    assert all(c.throughput.ratio == 1.0 for c in result.changes)
    assert all(c.throughput.speed.low < 1 < c.throughput.speed.high for c in result.changes)
    assert result.notes == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5%", 0.05), ("0.05", 0.05), (" 12.5% ", 0.125), ("0", 0.0)],
)
def test_threshold_parsing(text: str, expected: float) -> None:
    assert parse_threshold(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["5", "abc", "-1%", "100%", "1.5"])
def test_threshold_parsing_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_threshold(text)


def test_html_page_escapes_and_marks_the_regression(tmp_path: Path) -> None:
    page = write_html(compare_dirs(SMALL_A, SMALL_B), tmp_path / "sub" / "cmp.html").read_text()
    assert "<script" not in page.lower()
    assert escape(f"mypkg.nets:Net{HOSTILE}") in page
    assert '<td class="status-bad">slower</td>' in page
    assert page.count('class="status-bad"') == 1


# --- harness/measure/stats.py ---------------------------------------------------------------------


def test_mean_ci_is_the_t_interval() -> None:
    x = [0.95, 0.96, 0.97]
    ci = stats.mean_ci(x)
    low, high = sps.t.interval(0.95, 2, loc=np.mean(x), scale=sps.sem(x))
    assert (ci.low, ci.high) == pytest.approx((low, high))
    one = stats.mean_ci([0.9, math.nan])
    assert one.n == 1 and one.mean == 0.9 and math.isnan(one.low)


def test_spread_is_median_and_quartiles() -> None:
    s = stats.spread([1, 2, 3, 4, 100])
    assert (s.median, s.q1, s.q3, s.min, s.max, s.n) == (3, 2, 4, 1, 100, 5)
    assert stats.spread([]).n == 0


def test_group_comparison_paired_and_unpaired() -> None:
    groups = {
        "a": {"s0": 0.90, "s1": 0.95, "s2": 0.92},
        "b": {"s0": 0.91, "s1": 0.96, "s2": 0.93},
        "c": {"s0": 0.92, "s1": 0.97, "s2": 0.94},
    }
    paired = stats.compare_groups(groups)
    expected = sps.friedmanchisquare(*[list(g.values()) for g in groups.values()])
    assert paired.test == "Friedman" and paired.p_value == pytest.approx(expected.pvalue)
    assert paired.n == 3
    unpaired = stats.compare_groups(groups, paired=False)
    expected = sps.kruskal(*[list(g.values()) for g in groups.values()])
    assert unpaired.test == "Kruskal-Wallis"
    assert unpaired.p_value == pytest.approx(expected.pvalue)
    # Two variants: Friedman is undefined, so the groups are compared as independent.
    assert stats.compare_groups({k: groups[k] for k in "ab"}).test == "Kruskal-Wallis"


def test_group_comparison_says_when_no_test_is_possible() -> None:
    one_seed = stats.compare_groups({"a": {"s0": 0.9}, "b": {"s0": 0.91}, "c": {"s0": 0.8}})
    assert not one_seed.possible and "fewer than 2 seeds" in one_seed.reason
    assert math.isnan(one_seed.p_value) and not one_seed.significant()
    assert not stats.compare_groups({"a": {"s0": 0.9, "s1": 0.8}}).possible
    same = stats.compare_groups({g: {"s0": 0.9, "s1": 0.8} for g in "abc"})
    assert same.possible and same.p_value == 1.0


def test_sample_shift_uses_mann_whitney_and_median_ratio() -> None:
    a, b = [100, 102, 98, 101], [70, 71, 69, 72]
    shift = stats.compare_samples(a, b)
    assert shift.ratio == pytest.approx(np.median(b) / np.median(a))
    expected = sps.mannwhitneyu(a, b, alternative="two-sided")
    assert shift.test.p_value == pytest.approx(expected.pvalue)
    assert not stats.compare_samples([100], [70]).test.possible


def test_variants_in_one_set_only_and_setting_changes(tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(SMALL_B, b)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["config"]["batch_size"] = 256  # not epochs: a manifest of 5 with 3 stored is cut short
    manifest["environment"]["tensorflow"] = "2.16.1"
    manifest["runs"] = [r for r in manifest["runs"] if r["variant"] != "keras_sequential"]
    (b / "manifest.json").write_text(json.dumps(manifest))
    for name in ("summary.csv", "epochs.csv", "steps.csv"):
        frame = pd.read_csv(b / name)
        frame[frame["variant"] != "keras_sequential"].to_csv(b / name, index=False)
    result = compare_dirs(SMALL_A, b)
    verdicts = {c.variant: c.verdict for c in result.changes}
    assert verdicts["keras_sequential"] == "only in A"
    assert "tensorflow: 2.21.0 -> 2.16.1" in result.notes
    assert "batch_size: 128 -> 256" in result.notes
