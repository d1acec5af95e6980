"""`mlpbench` as a user runs it: a real process, its output and its exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import variants

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--hidden", "16", "--epochs", "2", "--seeds", "0", "--no-calibrate"]


_SCRIPT = Path(sys.executable).parent / "mlpbench"
# the installed console script, as a user runs it
MLPBENCH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "harness.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def mlpbench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run from the project folder, so that `tests.*` classes import as a user's own package
    would from theirs."""
    return subprocess.run(
        [*MLPBENCH, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=ENV
    )


def test_list_shows_every_variant_with_api_level_and_lines_of_code():
    result = mlpbench("list")
    assert result.returncode == 0, result.stderr
    for name in variants.REGISTRY:
        line = next(ln for ln in result.stdout.splitlines() if f" {name} " in ln)
        assert any(cell.strip().isdigit() for cell in line.split("│")), line  # a LOC cell
    assert "NumPy, no framework" in result.stdout  # numpy_scratch's declared API level


@pytest.mark.parametrize("command", [[], ["list"], ["run"], ["report"], ["compare"]])
def test_every_command_has_help(command):
    result = mlpbench(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: mlpbench" in result.stdout


def test_no_command_is_an_error():
    result = mlpbench()
    assert result.returncode == 2
    assert result.stderr.startswith("mlpbench: error:")


BAD_ARGUMENTS = {
    "unknown variant": ["--variants", "numpy_scratch,no_such_variant"],
    "unknown dataset": ["--dataset", "cifar"],
    "zero epochs": ["--epochs", "0"],
    "negative batch": ["--batch-size", "-1"],
    "zero learning rate": ["--lr", "0"],
    "nan learning rate": ["--lr", "nan"],
    "zero width": ["--hidden", "16,0"],
    "negative seed": ["--seeds", "-1"],
    "seeds not numbers": ["--seeds", "a,b"],
    "zero timeout": ["--timeout", "0"],
    "zero jobs": ["--jobs", "0"],
    "accuracy above 1": ["--target-accuracy", "1.5"],
    "unknown optimizer": ["--optimizer", "rmsprop"],
    "unknown device": ["--device", "tpu"],
    "batch larger than the data": ["--batch-size", "100000"],
    "missing dataset files": ["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"],
    "variant path without class": ["--variant", "tests.faulty_variants"],
    "variant module does not import": ["--variant", "tests.no_such_module:Thing"],
    "variant class missing": ["--variant", "tests.faulty_variants:NoSuchClass"],
    "variant lacks the protocol": ["--variant", "tests.faulty_variants:NoProtocol"],
    "resume and force": ["--resume", "--force"],
}


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlpbench: error: ")


@pytest.mark.parametrize("args", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_argument_is_one_line_and_exit_2_before_any_work(args, tmp_path):
    out = tmp_path / "results"
    result = mlpbench("run", *SMALL, "--out", str(out), *args)
    assert_one_line_error(result)
    assert not out.exists()  # nothing was started


def test_protocol_error_names_what_is_missing(tmp_path):
    result = mlpbench(
        "run", "--variant", "tests.faulty_variants:NoProtocol", "--out", str(tmp_path)
    )
    assert "train_epoch" in result.stderr


@pytest.mark.system
def test_gpu_without_a_gpu_fails_clearly(tmp_path):
    """This machine has no GPU (the suite's CI runs on CPU); with one, --device gpu is valid."""
    args = [*SMALL, "--variants", "numpy_scratch", "--device", "gpu", "--out", str(tmp_path / "r")]
    result = mlpbench("run", *args)
    if result.returncode == 0:
        pytest.skip("TensorFlow sees a GPU here")
    assert_one_line_error(result)
    assert "sees no GPU" in result.stderr


def test_existing_output_folder_needs_resume_or_force(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    result = mlpbench("run", *SMALL, "--variants", "numpy_scratch", "--out", str(out))
    assert_one_line_error(result)
    assert "--resume" in result.stderr and "--force" in result.stderr


def test_force_refuses_a_folder_that_is_not_results(tmp_path):
    (tmp_path / "precious.txt").write_text("not a benchmark")
    result = mlpbench(
        "run", *SMALL, "--variants", "numpy_scratch", "--out", str(tmp_path), "--force"
    )
    assert_one_line_error(result)
    assert (tmp_path / "precious.txt").exists()


@pytest.mark.parametrize("task", list(variants.TASKS))
def test_the_default_suite_has_every_level_and_its_aa_control(task):
    """Without --variants a suite runs every level of the task (one form each) and all of an
    A/A group: a default run can state its resolution."""
    import argparse

    from harness.cli.validate import select_variants

    args = argparse.Namespace(task=task, variants=None, variant=[], parity=True)
    chosen = [name for name, _ in select_variants(args)]
    assert chosen == list(variants.DEFAULT[task])
    registry = variants.registry(task)
    # the data-parallel variants carry no level (None): they are one of their own here
    levels = {getattr(variants.load(p), "level", None) for p in registry.values()}
    assert levels == {getattr(variants.load(registry[n]), "level", None) for n in chosen}
    assert any(set(group) <= set(chosen) for group in variants.IDENTICAL[task])
    every = argparse.Namespace(task=task, variants="all", variant=[], parity=True)
    assert [name for name, _ in select_variants(every)] == list(registry)
