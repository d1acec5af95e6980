"""`mlpbench sweep` as a user runs it (real processes), the sweep folder it writes, and the
report of that folder: figure data checked against the sub-folders' own CSVs."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html import escape
from pathlib import Path

import pandas as pd
import pytest

from harness.cli.report import build_report
from harness.report.data import sweep_data
from harness.results import storage
from harness.results.reader import read_sweep
from tests.test_cli import assert_one_line_error, mlpbench
from tests.test_report import PNG_SIGNATURE, assert_png

# Its suites are compared by speed: another test beside them makes their runs noisy.
pytestmark = pytest.mark.serial


VARIANTS = ("numpy_scratch", "tf2_function")
SIZES = (32, 128)
SMALL = ["--variants", ",".join(VARIANTS), "--hidden", "16", "--epochs", "2", "--seeds", "0"]
SWEEP = [*SMALL, "--no-calibrate", "--batch-sizes", ",".join(map(str, SIZES))]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "bs-sweep"
    result = mlpbench("sweep", *SWEEP, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def report(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = mlpbench("report", str(sweep), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_every_batch_size_is_an_ordinary_results_folder(sweep: Path) -> None:
    for size in SIZES:
        results = storage.load_results(sweep / f"bs{size}")
        assert results.manifest["config"]["batch_size"] == size
        assert results.manifest["config"]["epochs"] == 2
        assert set(results.summary["variant"]) == set(VARIANTS)
        assert (results.summary["status"] == "ok").all()
        assert len(results.epochs) == len(VARIANTS) * 2
        # the steps of one epoch follow the batch size: ceil(n_train / batch)
        n_train = results.manifest["tasks"]["0"]["n_train"]
        steps = results.steps[(results.steps["variant"] == "numpy_scratch")]
        assert (steps["epoch"] == 1).sum() == -(-n_train // size)


def test_sweep_json_names_the_batch_sizes_and_their_folders(sweep: Path) -> None:
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["name"] == sweep.name
    assert manifest["batch_sizes"] == list(SIZES)
    assert manifest["points"] == [
        {"batch_size": size, "path": f"bs{size}", "exit_status": 0} for size in SIZES
    ]
    assert manifest["finished"] is not None
    assert manifest["command"].startswith("mlpbench sweep ")
    assert {p.name for p in sweep.iterdir()} == {"sweep.json", *(f"bs{s}" for s in SIZES)}


def test_other_commands_read_the_sub_folders(sweep: Path, tmp_path: Path) -> None:
    result = mlpbench("compare", str(sweep / "bs32"), str(sweep / "bs128"))
    assert result.returncode in (0, 1), result.stderr  # a regression verdict, not bad input
    assert "tf2_function" in result.stdout
    result = mlpbench("report", str(sweep / "bs32"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr


def test_help_names_the_batch_sizes_and_the_lower_epoch_default() -> None:
    result = mlpbench("sweep", "--help")
    assert result.returncode == 0, result.stderr
    assert "--batch-sizes" in result.stdout and "default: 3" in result.stdout
    assert "sweep" in mlpbench("--help").stdout


BAD_BATCH_SIZES = {
    "zero": ["--batch-sizes", "0"],
    "zero among others": ["--batch-sizes", "32,0"],
    "not a number": ["--batch-sizes", "x"],
    "larger than the training set": ["--batch-sizes", "32,100000"],
    "missing": [],
}


@pytest.mark.parametrize("args", BAD_BATCH_SIZES.values(), ids=BAD_BATCH_SIZES.keys())
def test_bad_batch_sizes_are_one_line_and_exit_2_before_any_work(args, tmp_path):
    out = tmp_path / "sweep"
    result = mlpbench("sweep", *SMALL, *args, "--out", str(out))
    assert_one_line_error(result)
    assert not out.exists()


def test_a_bad_run_option_is_refused_as_by_run(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = mlpbench("sweep", *SWEEP, "--variants", "no_such_variant", "--out", str(out))
    assert_one_line_error(result)
    assert "unknown variant" in result.stderr
    assert not out.exists()


def test_an_existing_folder_needs_resume_or_force_and_force_only_replaces_a_sweep(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("not a sweep")
    assert_one_line_error(mlpbench("sweep", *SWEEP, "--out", str(out)))
    result = mlpbench("sweep", *SWEEP, "--out", str(out), "--force")
    assert_one_line_error(result)
    assert "not a sweep folder" in result.stderr
    assert (out / "precious.txt").exists()


def test_resume_continues_the_same_sweep_only(sweep: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    result = mlpbench("sweep", *SMALL, "--no-calibrate", "--batch-sizes", "32,256",
                      "--out", str(copy), "--resume")  # fmt: skip
    assert_one_line_error(result)
    assert "--batch-sizes" in result.stderr
    result = mlpbench("sweep", *SWEEP, "--out", str(copy), "--resume")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((copy / "sweep.json").read_text())
    assert len(manifest["resumed"]) == 1 and manifest["finished"] is not None
    # every run was ok, so nothing ran again: the rows are the original ones
    for size in SIZES:
        before = pd.read_csv(sweep / f"bs{size}" / "epochs.csv")
        after = pd.read_csv(copy / f"bs{size}" / "epochs.csv")
        pd.testing.assert_frame_equal(before, after)


def test_report_shows_the_sweep_figure_and_every_variant(report: Path) -> None:
    assert (report / "sweep_throughput.png").read_bytes()[:8] == PNG_SIGNATURE
    assert_png((report / "sweep_throughput.png").read_bytes())
    assert not (report / "sweep_roofline.png").exists()  # --no-calibrate: no roofline
    page = (report / "index.html").read_text(encoding="utf-8")
    assert '<h2 id="sweep">Batch-size sweep</h2>' in page
    embedded = re.search(
        r'id="fig-sweep_throughput"><h3>[^<]*</h3><img src="data:image/png;base64,([^"]+)"', page
    )
    assert embedded and base64.b64decode(embedded.group(1))[:8] == PNG_SIGNATURE
    for variant in VARIANTS:
        assert escape(variant) in page
    assert "No GEMM roofline" in page  # the verdict says why there is no roofline
    # and then the ordinary report of the largest batch size
    assert '<h2 id="figures">' in page and (report / "throughput.png").exists()
    assert f"Speed (batch {max(SIZES)})" in page


def test_figure_data_is_the_median_of_each_folders_epoch_windows(sweep: Path) -> None:
    data = sweep_data(*read_sweep(sweep))
    assert data.batch_sizes == list(SIZES)
    assert set(data.labels) == set(VARIANTS)
    for size in SIZES:
        epochs = pd.read_csv(sweep / f"bs{size}" / "epochs.csv")
        summary = pd.read_csv(sweep / f"bs{size}" / "summary.csv")
        # a run that outside load disturbed (noisy) is left out of speed figures
        noisy = summary.loc[summary["noisy"].eq(True), ["variant", "seed"]]
        quiet = epochs.merge(noisy, how="left", indicator=True).query("_merge == 'left_only'")
        steady = quiet[quiet["epoch"] >= 2]  # epoch 1 holds tracing (results/README.md)
        expected = steady.groupby("variant")["samples_per_second"].median()
        got = data.table[data.table["batch_size"] == size].set_index("label")["median"]
        pd.testing.assert_series_equal(
            got.sort_index(), expected.sort_index(), check_names=False, rtol=1e-12
        )


def test_roofline_comes_from_each_folders_calibration(sweep: Path, tmp_path: Path) -> None:
    """Calibrations written into a copy (measuring one takes seconds): the dashed line is
    peak_gflops * 1e9 / flops_per_sample per batch size, the fraction median / roofline."""
    copy = tmp_path / "calibrated"
    shutil.copytree(sweep, copy)
    peaks = {32: 10.0, 128: 20.0}
    for size, peak in peaks.items():
        path = copy / f"bs{size}" / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["calibration"] = {"peak_gflops": peak, "flops_per_sample": 1000}
        path.write_text(json.dumps(manifest))
    data = sweep_data(*read_sweep(copy))
    for size, peak in peaks.items():
        assert data.roofline()[size] == pytest.approx(peak * 1e9 / 1000)
        rows = data.table[data.table["batch_size"] == size]
        assert rows["fraction"].to_numpy() == pytest.approx(
            rows["median"].to_numpy() / (peak * 1e9 / 1000)
        )
    index = build_report([copy], tmp_path / "report")
    assert_png((tmp_path / "report" / "sweep_roofline.png").read_bytes())
    page = index.read_text(encoding="utf-8")
    assert 'id="sweep-roofline"' in page and "of the GEMM roofline" in page


def test_a_sweep_folder_where_one_results_folder_is_expected(sweep: Path, tmp_path: Path):
    result = mlpbench("report", str(sweep), str(sweep / "bs32"), "--out", str(tmp_path / "r"))
    assert_one_line_error(result)
    assert "on its own" in result.stderr
    result = mlpbench("compare", str(sweep), str(sweep / "bs32"))
    assert_one_line_error(result)
    assert "is a sweep folder" in result.stderr and "bs128" in result.stderr
