"""Hostile input on the reading side, each case once failing: damaged result folders given to
report, compare and export-tensorboard, and data files that are not what their names say (a
gzip bomb, impossible IDX headers, a directory or a symlink loop in place of a file). Each
must end in one line naming the file and what is wrong, exit status 2, never a traceback."""

from __future__ import annotations

import gzip
import json
import resource
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from .test_cli import ENV, MLPBENCH, ROOT, assert_one_line_error, mlpbench
from .test_compare import FIXTURES
from .test_datasets import TRAIN_IMAGES, gzip_bomb, idx_path, write_idx_dir

SMALL_A = FIXTURES / "small_a"


def damaged_copy(tmp_path: Path, name: str = "damaged") -> Path:
    folder = tmp_path / name
    shutil.copytree(SMALL_A, folder)
    return folder


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def edit_cell(folder: Path, file: str, row: int, column: str, value: str) -> None:
    frame = pd.read_csv(folder / file, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(folder / file, index=False)


def read_commands(folder: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Each command that reads a results folder, given `folder`."""
    return {
        "report": ["report", str(folder), "--out", str(tmp_path / "report")],
        "compare": ["compare", str(SMALL_A), str(folder)],
        "export-tensorboard": ["export-tensorboard", str(folder), str(tmp_path / "tb")],
    }


COMMANDS = ["report", "compare", "export-tensorboard"]


# 7d: a manifest with wrong types


@pytest.mark.parametrize("command", COMMANDS)
def test_manifest_runs_of_the_wrong_type_is_one_line(command, tmp_path):
    """Once an AttributeError traceback ('str' object has no attribute 'get')."""
    folder = damaged_copy(tmp_path)
    edit_manifest(folder, lambda m: m.update(runs="oops"))
    result = mlpbench(*read_commands(folder, tmp_path)[command])
    assert_one_line_error(result)
    assert f'{folder / "manifest.json"}: runs is text "oops", expected a list' in result.stderr


MANIFEST_DAMAGE = {
    "a run that is not an object": (
        lambda m: m["runs"].__setitem__(3, "oops"),
        'runs[3] is text "oops", expected an object',
    ),
    "a seed as text": (
        lambda m: m["runs"][0].__setitem__("seed", "0"),
        'runs[0].seed is text "0", expected a whole number',
    ),
    "config a list": (lambda m: m.update(config=[1]), "config is a list, expected an object"),
    "a task a number": (
        lambda m: m["tasks"].__setitem__("1", 5),
        "tasks['1'] is the number 5, expected an object",
    ),
    "calibration as text": (
        lambda m: m.update(calibration={"peak_gflops": "fast", "flops_per_sample": 1}),
        'calibration.peak_gflops is text "fast", expected a number',
    ),
    "target accuracy as true": (
        lambda m: m["config"].__setitem__("target_accuracy", True),
        "config.target_accuracy is true, expected a number",
    ),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_manifest_field_of_the_wrong_type_is_named(damage, tmp_path):
    change, message = MANIFEST_DAMAGE[damage]
    folder = damaged_copy(tmp_path)
    edit_manifest(folder, change)
    result = mlpbench(*read_commands(folder, tmp_path)["report"])
    assert_one_line_error(result)
    assert f"{folder / 'manifest.json'}: {message}" in result.stderr
    assert not (tmp_path / "report" / "index.html").exists()


# 7e: cells that are not numbers


@pytest.mark.parametrize("command", COMMANDS)
def test_non_numeric_loss_in_steps_csv_is_one_line(command, tmp_path):
    """Once a pandas DataError (report) or ValueError (export-tensorboard) traceback."""
    folder = damaged_copy(tmp_path)
    edit_cell(folder, "steps.csv", 3, "loss", "abc")
    result = mlpbench(*read_commands(folder, tmp_path)[command])
    assert_one_line_error(result)
    assert (
        f"{folder / 'steps.csv'}, row 4 (numpy_scratch seed 0): loss is 'abc', not a number"
        in result.stderr
    )


CELL_DAMAGE = {
    "accuracy as text": ("summary.csv", 1, "test_accuracy", "high", "'high', not a number"),
    "parity as maybe": ("summary.csv", 0, "parity_pass", "maybe", "'maybe', not True or False"),
    "params not whole": ("summary.csv", 2, "params", "2.5", "2.5, not a whole number"),
    "epoch as text": ("epochs.csv", 0, "epoch", "first", "'first', not a number"),
    "seed missing": ("epochs.csv", 5, "seed", "", "row 6: seed is empty"),
    "status unknown": ("summary.csv", 1, "status", "great", "status is 'great', not one of ok,"),
}


@pytest.mark.parametrize("damage", list(CELL_DAMAGE))
def test_damaged_cell_is_named_with_its_file_and_row(damage, tmp_path):
    file, row, column, value, message = CELL_DAMAGE[damage]
    folder = damaged_copy(tmp_path)
    edit_cell(folder, file, row, column, value)
    result = mlpbench(*read_commands(folder, tmp_path)["report"])
    assert_one_line_error(result)
    assert f"{folder / file}, row {row + 1}" in result.stderr and message in result.stderr


def test_infinite_and_missing_losses_still_read(tmp_path):
    """What a diverged run writes (an empty cell for NaN, inf) is a number, not damage."""
    folder = damaged_copy(tmp_path)
    edit_cell(folder, "steps.csv", 3, "loss", "inf")
    edit_cell(folder, "steps.csv", 4, "loss", "")
    result = mlpbench(*read_commands(folder, tmp_path)["export-tensorboard"])
    assert result.returncode == 0, result.stderr


# 9b: a summary.csv with no runs


@pytest.mark.parametrize("content", ["", "header"], ids=["empty", "header-only"])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_summary_without_rows_is_refused(command, content, tmp_path):
    """Once a report saying "none failed" with accuracy nan, and exit 0."""
    folder = damaged_copy(tmp_path)
    summary = folder / "summary.csv"
    header = summary.read_text().splitlines()[0] + "\n"
    summary.write_text(header if content else "")
    result = mlpbench(*read_commands(folder, tmp_path)[command])
    assert_one_line_error(result)
    assert (
        f"{folder} holds no runs: {summary} has no rows, though its manifest lists 12 finished "
        "(11 ok, 1 failed)"
    ) in result.stderr


def test_folder_with_no_runs_anywhere_is_refused(tmp_path):
    folder = damaged_copy(tmp_path)
    summary = folder / "summary.csv"
    summary.write_text(summary.read_text().splitlines()[0] + "\n")
    edit_manifest(folder, lambda m: m.update(runs=[]))
    result = mlpbench(*read_commands(folder, tmp_path)["report"])
    assert_one_line_error(result)
    assert f"{folder} holds no runs: {summary} has no rows and its manifest lists none" in (
        result.stderr
    )


def test_summary_missing_finished_runs_is_refused(tmp_path):
    """A finished run the manifest knows but summary.csv lacks would show as ok, no numbers."""
    folder = damaged_copy(tmp_path)
    summary = folder / "summary.csv"
    frame = pd.read_csv(summary, dtype=str, keep_default_na=False)
    frame.iloc[:-2].to_csv(summary, index=False)
    result = mlpbench(*read_commands(folder, tmp_path)["report"])
    assert_one_line_error(result)
    assert f"{summary} has no row for 2 run(s) its manifest lists as finished" in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_symlink_loop_in_place_of_a_results_folder_is_named(command, tmp_path):
    """Once "no such results directory", as if nothing were there."""
    loop = tmp_path / "results"
    loop.symlink_to(loop.name)
    result = mlpbench(*read_commands(loop, tmp_path)[command])
    assert_one_line_error(result)
    assert f"{loop} is a symlink loop, not a results folder" in result.stderr


# Sweep folders: one interrupted during its first batch size, one with a damaged sweep.json


def sweep_of_small_a(tmp_path: Path, started: tuple[int, ...]) -> Path:
    """A sweep folder over batch sizes 32, 128 and 512 in which only `started` have results
    (each a copy of the small_a fixture)."""
    folder = tmp_path / "sweep"
    folder.mkdir()
    points = []
    for size in (32, 128, 512):
        points.append({"batch_size": size, "path": f"bs{size}", "exit_status": None})
        if size in started:
            shutil.copytree(SMALL_A, folder / f"bs{size}")
    sweep = {
        "schema_version": 1,
        "kind": "batch_size_sweep",
        "name": "sweep",
        "created": "2025-01-01T10:00:00Z",
        "finished": None,
        "command": "mlpbench sweep --batch-sizes 32,128,512",
        "batch_sizes": [32, 128, 512],
        "points": points,
    }
    (folder / "sweep.json").write_text(json.dumps(sweep))
    return folder


def test_sweep_interrupted_during_its_first_batch_size_reports(tmp_path):
    """Once a TypeError traceback: with one batch size started, the smallest and the largest
    are the same, and the comparison between them selected the same column twice."""
    folder = sweep_of_small_a(tmp_path, started=(32,))
    result = mlpbench("report", str(folder), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "At batch 32, numpy_scratch is fastest" in page


def test_sweep_json_field_of_the_wrong_type_is_named(tmp_path):
    """Once a TypeError traceback (a path that is a number)."""
    folder = sweep_of_small_a(tmp_path, started=(32,))
    sweep = json.loads((folder / "sweep.json").read_text())
    sweep["points"][1]["path"] = 5
    (folder / "sweep.json").write_text(json.dumps(sweep))
    result = mlpbench("report", str(folder), "--out", str(tmp_path / "report"))
    assert_one_line_error(result)
    assert f"{folder / 'sweep.json'}: points[1].path is the number 5, expected text" in (
        result.stderr
    )


# 2d, 8c, 8d: data files that are not what their names say


def mnist_run(data_dir: Path, tmp_path: Path, memory_limit: int | None = None):
    """`mlpbench run --dataset mnist` on `data_dir`, optionally under an address-space limit
    (as `ulimit -v` sets it); it stops at the data check, before any run."""

    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    args = ["run", "--dataset", "mnist", "--data-dir", str(data_dir), "--no-calibrate"]
    return subprocess.run(
        [*MLPBENCH, *args, "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**ENV, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        preexec_fn=limit,
    )


def test_gzip_bomb_in_place_of_an_idx_file_is_one_line_in_bounded_memory(tmp_path):
    """A 260 KB .gz whose header declares 20 images and then inflates to 256 MiB of zeros,
    under a 400 MB address-space limit: once a MemoryError traceback, as the whole file was
    inflated before its header was looked at."""
    directory = write_idx_dir(tmp_path / "mnist")
    path = idx_path(directory, TRAIN_IMAGES)
    path.write_bytes(gzip_bomb(struct.pack(">4I", 0x803, 20, 28, 28), 256))
    result = mnist_run(directory, tmp_path, memory_limit=400 << 20)
    assert_one_line_error(result)
    assert f"mnist: {path}: more than 1 MiB after the 20 images the header declares" in (
        result.stderr
    )
    assert not (tmp_path / "out").exists()


def test_images_header_declaring_dims_of_0xffffffff_is_one_line(tmp_path):
    """Once "36893488134534202129 bytes after the 4294967295 images the header declares": the
    product of the dims overflowed int64."""
    directory = write_idx_dir(tmp_path / "mnist")
    path = idx_path(directory, TRAIN_IMAGES)
    path.write_bytes(gzip.compress(struct.pack(">4I", 0x803, *[0xFFFFFFFF] * 3) + bytes(20)))
    result = mnist_run(directory, tmp_path)
    assert_one_line_error(result)
    assert f"{path}: images are 4294967295x4294967295, expected 28x28" in result.stderr
    assert "bytes after" not in result.stderr


@pytest.mark.parametrize(
    ("make", "what"),
    [(lambda p: p.mkdir(), "a directory"), (lambda p: p.symlink_to(p.name), "a symlink loop")],
    ids=["directory", "symlink-loop"],
)
def test_something_else_in_place_of_an_idx_file_is_one_line(make, what, tmp_path):
    """Once reported as "not found"."""
    directory = write_idx_dir(tmp_path / "mnist")
    path = idx_path(directory, TRAIN_IMAGES)
    path.unlink()
    make(path)
    result = mnist_run(directory, tmp_path)
    assert_one_line_error(result)
    assert f"mnist: {path} is {what}, not an IDX file" in result.stderr
