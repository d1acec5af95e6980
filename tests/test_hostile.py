"""Hostile input, each case once failing: bad lists, huge seeds, markup in names and paths, a
comparison against nothing, and variants that break the protocol after training well."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from .test_cli import SMALL, assert_one_line_error, mlpbench
from .test_compare import FIXTURES


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden", "512,,256"], "has an empty item"),
        (["--seeds", str(2**64 + 1)], "must be <= 9223372036854775807"),
        (["--seeds", "0,"], "has an empty item"),
    ],
)
def test_bad_lists_are_one_line(args, message, tmp_path):
    result = mlpbench("run", *args, "--out", str(tmp_path / "r"))
    assert_one_line_error(result)
    assert message in result.stderr
    assert not (tmp_path / "r").exists()


def test_square_brackets_in_paths_and_names_are_printed_as_written(tmp_path):
    out = tmp_path / "sweep[lr=0.1][/red]x"
    result = mlpbench("run", *SMALL, "--variants", "numpy_scratch", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Results: {out}" in result.stderr
    assert "MarkupError" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("NaNPredictions", "predict returned 4500 non-finite logits"),
        ("WrongShapePredictions", "predict returned an array of shape (450, 3)"),
        ("WrongWeights", "get_weights returned shapes"),
    ],
)
def test_protocol_breaches_are_failures_naming_the_method(variant, reason, tmp_path):
    out = tmp_path / "r"
    path = f"tests.faulty_variants:{variant}"
    result = mlpbench("run", *SMALL, "--variant", path, "--no-parity", "--out", str(out))
    assert result.returncode == 1, result.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["status"] == "failed" and reason in row["error"], row["error"]


def test_compare_fails_when_b_finished_nothing(tmp_path):
    b = tmp_path / "b"
    shutil.copytree(FIXTURES / "small_a", b)
    summary = pd.read_csv(b / "summary.csv")
    summary["status"] = "timeout"
    summary.to_csv(b / "summary.csv", index=False)
    result = mlpbench("compare", str(FIXTURES / "small_a"), str(b))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no finished run in B" in result.stdout


@pytest.mark.parametrize("alpha", ["2", "-1", "0"])
def test_compare_rejects_an_impossible_alpha(alpha):
    result = mlpbench(
        "compare", str(FIXTURES / "small_a"), str(FIXTURES / "small_b"), "--alpha", alpha
    )
    assert_one_line_error(result)
    assert "--alpha" in result.stderr


def test_a_variant_that_learns_differently_fails_and_amplified_rounding_does_not(tmp_path):
    """Past the steps where float32 trajectories agree, a run is judged against the band that
    the reference's seeds make: a wrong gradient leaves it, rounding noise does not."""
    out = tmp_path / "r"
    extra = ["--variant", "tests.faulty_variants:WrongGradient"]
    extra += ["--variant", "tests.faulty_variants:RoundedDifferently"]
    args = ["--hidden", "16", "--epochs", "4", "--seeds", "0,1,2", "--no-calibrate"]
    result = mlpbench("run", *args, "--variants", "numpy_scratch", *extra, "--out", str(out))
    assert result.returncode == 1, result.stderr  # the wrong gradient fails the suite
    summary = pd.read_csv(out / "summary.csv").set_index(["variant", "seed"])
    wrong = summary.loc["tests.faulty_variants:WrongGradient"]
    rounded = summary.loc["tests.faulty_variants:RoundedDifferently"]
    assert (~wrong["learning_pass"]).all() and (wrong["seed_band_gap"] > 1).all()
    assert (~rounded["parity_pass"]).all()  # not exact: it starts from other weights
    assert rounded["learning_pass"].all() and (rounded["seed_band_gap"] <= 1).all()
    assert "1 failed the parity check" not in result.stderr  # counted per run: 3 failed
    assert "3 failed the parity check" in result.stderr
    assert "stayed within its seed band" in result.stderr


def test_one_seed_still_has_a_seed_band_from_the_reference(tmp_path):
    """`--seeds 0` with parity: the reference alone also runs seeds 1 and 2, so that its band
    exists and amplified rounding passes; without them every parted run would fail."""
    out = tmp_path / "r"
    extra = ["--variant", "tests.faulty_variants:RoundedDifferently"]
    args = ["--hidden", "16", "--epochs", "4", "--seeds", "0", "--no-calibrate"]
    result = mlpbench("run", *args, "--variants", "numpy_scratch", *extra, "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary.loc[summary["variant"] == "numpy_scratch", "seed"]) == [0, 1, 2]
    assert summary.loc[summary["variant"] != "numpy_scratch", "seed"].tolist() == [0]
    rounded = summary.set_index("variant").loc["tests.faulty_variants:RoundedDifferently"]
    assert not rounded["parity_pass"] and rounded["learning_pass"]
    assert 0 < rounded["seed_band_gap"] <= 1
    assert json.loads((out / "manifest.json").read_text())["band_seeds"] == [1, 2]


def test_a_variant_named_in_markup_runs_and_is_printed_as_written(tmp_path):
    out = tmp_path / "r"
    path = "tests.hostile_names:[/bold]x[red]"
    result = mlpbench("run", *SMALL, "--variant", path, "--no-parity", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "MarkupError" not in result.stderr + result.stdout
    assert path in result.stdout.replace("\n", "") or "[/bold]x[red]" in result.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert summary["variant"].tolist() == [path] and summary["status"].tolist() == ["ok"]
