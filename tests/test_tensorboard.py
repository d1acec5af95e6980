"""`mlpbench export-tensorboard`: the event files read back with TensorBoard's own reader
hold exactly the curves of the CSVs, one TensorBoard run per variant and seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorboard", reason="tensorboard is not installed (extra 'tensorboard')")

from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

from harness.report.tensorboard import EPOCH_TAGS, STEP_TAG, export, run_dir  # noqa: E402

RESULTS = Path(__file__).parent / "fixtures" / "results" / "small_a"


def read_scalars(path: Path) -> dict[str, dict[int, float]]:
    acc = ea.EventAccumulator(str(path), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    return {
        tag: {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}
        for tag in acc.Tags()["tensors"]
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("tb")
    return out, export(RESULTS, out)


def test_one_run_per_variant_and_seed(exported: tuple[Path, list[Path]]) -> None:
    out, runs = exported
    steps = pd.read_csv(RESULTS / "steps.csv")
    expected = {
        run_dir(out, v, int(s)) for v, s in steps[["variant", "seed"]].drop_duplicates().values
    }
    assert set(runs) == expected
    # The user's `module:Class<script>` variant got a safe, distinct folder name.
    assert all(
        p.parent.name.replace("-", "").replace("_", "").replace(".", "").isalnum() for p in runs
    )


def test_values_equal_the_csvs(exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    steps = pd.read_csv(RESULTS / "steps.csv")
    epochs = pd.read_csv(RESULTS / "epochs.csv")
    for (variant, seed), run_steps in steps.groupby(["variant", "seed"]):
        scalars = read_scalars(run_dir(out, variant, int(seed)))
        assert scalars[STEP_TAG] == pytest.approx(
            dict(zip(run_steps["step"], run_steps["loss"].astype(np.float32), strict=True))
        )
        run_epochs = epochs[(epochs["variant"] == variant) & (epochs["seed"] == seed)]
        for column, tag in EPOCH_TAGS.items():
            expected = run_epochs[column].astype(np.float32)
            assert scalars[tag] == pytest.approx(
                dict(zip(run_epochs["epoch"], expected, strict=True)), rel=1e-6
            )


def test_failed_run_keeps_what_it_finished(exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    scalars = read_scalars(run_dir(out, "keras_sequential", 1))  # failed after epoch 1
    assert sorted(scalars["epoch/test_accuracy"]) == [1]
    assert sorted(scalars[STEP_TAG]) == [1, 2, 3, 4]


def test_wall_time_follows_training_seconds(exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    acc = ea.EventAccumulator(str(run_dir(out, "numpy_scratch", 0)), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    times = [e.wall_time for e in acc.Tensors("epoch/seconds")]
    seconds = [
        float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors("epoch/seconds")
    ]
    # Wall times are doubles near 1.7e9 s: about 0.2 us of resolution.
    assert np.diff(times) == pytest.approx(seconds[1:], abs=1e-6)


def test_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "harness.cli", "export-tensorboard", str(RESULTS), str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "wrote 12 TensorBoard runs" in result.stdout
    assert read_scalars(run_dir(tmp_path, "tf2_function", 2))[STEP_TAG]
    missing = subprocess.run(
        cmd[:-2] + [str(tmp_path / "nope"), str(tmp_path)], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert (
        missing.stderr.strip() == f"mlpbench: error: no such results directory: {tmp_path / 'nope'}"
    )


def test_tensorflow_reads_the_events(exported: tuple[Path, list[Path]]) -> None:
    """TensorFlow's own reader, independent of the writer: the files are standard events."""
    tf = pytest.importorskip("tensorflow")
    out, _ = exported
    (events,) = run_dir(out, "tf2_function", 0).glob("events.out.tfevents.*")
    losses = {}
    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            if value.tag == STEP_TAG:
                losses[event.step] = float(tf.make_ndarray(value.tensor))
    steps = pd.read_csv(RESULTS / "steps.csv")
    run = steps[(steps["variant"] == "tf2_function") & (steps["seed"] == 0)]
    assert losses == pytest.approx(
        dict(zip(run["step"], run["loss"].astype(np.float32), strict=True))
    )
