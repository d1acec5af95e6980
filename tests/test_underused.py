"""Underused windows: a timed window in which the worker left cores idle that its variant used in
its other windows is flagged, counted in summary.csv, shown in the report and left out of speed
claims; a window that kept its cores busy, one too short for the tick, one on a busy machine,
and one whose core another process took are not."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.cli.options import build_parser
from harness.cli.validate import make_config
from harness.datasets import load_digits
from harness.measure import cores, noise
from harness.report.data import combine, throughput_by_label, underused_windows
from harness.report.verdict import verdict
from harness.results import reader, scores, storage
from harness.run import worker
from harness.run.config import SuiteError, check_resumable
from harness.task import make_task
from variants.base import SGD, optimizer_to_dict

from .test_cli import ROOT, mlpbench

N_TRAIN = 1000
FAST = (2.0, 3.8, 0.2, 0.0)  # seconds, own, idle, foreign CPU seconds: 1.9 cores on 2 CPUs
SLOW = (4.0, 4.0, 4.0, 0.0)  # the same work at half the speed: 1 core used, 1 core idle


def epoch_rows(variant: str, seed: int, windows: list[tuple[float, float, float, float]]) -> list:
    """A run's epoch rows: a warm-up epoch, then one steady epoch per window."""
    rows = []
    for epoch, (seconds, own, idle, foreign) in enumerate([(0.5, 0.1, 0.9, 0.0), *windows], 1):
        rows.append(
            {"variant": variant, "seed": seed, "epoch": epoch, "train_loss": 1.0,
             "test_loss": 1.0, "test_accuracy": 0.9, "seconds": seconds,
             "samples_per_second": N_TRAIN / seconds, "foreign_cpu_seconds": foreign,
             "own_cpu_seconds": own, "idle_cpu_seconds": idle}
        )  # fmt: skip
    return rows


def frame(*runs: list) -> pd.DataFrame:
    return pd.DataFrame([row for run in runs for row in run])


def flags(epochs: pd.DataFrame, **kwargs: Any) -> list[bool]:
    """The steady windows' flags, in row order (warm-up rows are never flagged)."""
    out = scores.underused_rows(epochs, cpus=2, **kwargs)
    assert not out[epochs["epoch"] == 1].any()
    return out[epochs["epoch"] > 1].tolist()


def test_a_window_that_left_a_core_idle_is_flagged_and_busy_ones_are_not() -> None:
    epochs = frame(epoch_rows("v", 0, [FAST, SLOW, FAST, FAST]))
    assert flags(epochs) == [False, True, False, False]
    assert flags(frame(epoch_rows("v", 0, [FAST, FAST, FAST, FAST]))) == [False] * 4


def test_a_window_below_the_band_mostly_from_idle_cores_is_underused() -> None:
    """A window of a real suite (tf2_function, Fashion-MNIST 784-512-256, Intel Xeon): 0.897x
    its variant's median speed, 1.444 cores against 1.59, so 0.146 core idle, under the 0.15-core
    threshold; 9 % of its cores idle explain most of its 10.3 % loss, as dearer CPU time does for
    a slowed window. The same cores in a window inside the band are not flagged."""
    busy = (2.0, 2.0 * 1.59, 2.0 * 0.41, 0.0)

    def at(speed: float) -> tuple[float, float, float, float]:
        seconds = 2.0 / speed
        return (seconds, seconds * 1.444, seconds * 0.556, 0.0)

    windows = [busy, busy, at(0.897), busy, busy, at(0.95), busy, busy]
    epochs = frame(epoch_rows("v", 0, windows))
    assert flags(epochs) == [False, False, True, False, False, False, False, False]
    steady = epochs[epochs["epoch"] > 1]
    without_speed = cores.underused(
        steady["own_cpu_seconds"], steady["idle_cpu_seconds"], steady["foreign_cpu_seconds"],
        steady["seconds"], cpus=2,
    )  # fmt: skip
    assert not without_speed.any()  # the core threshold alone does not see it


def test_a_short_window_cannot_be_judged() -> None:
    """At 20 ms, a core's worth of shortfall is two ticks: not told from tick sampling. The same
    proportions over 0.5 s are."""

    def scaled(t: float) -> list:
        return [tuple(v * t for v in w) for w in (FAST, SLOW, FAST, FAST)]

    assert flags(frame(epoch_rows("v", 0, scaled(0.01)))) == [False] * 4
    assert flags(frame(epoch_rows("v", 0, scaled(0.25)))) == [False, True, False, False]
    se = cores.standard_error(np.array([0.02]), 2)[0]
    assert se > cores.UNDERUSED_CORES  # why: one window's cores are not known to the threshold


def test_the_machine_must_have_had_idle_cpu() -> None:
    """A window that used fewer cores while no CPU stood idle was not left idle by the worker:
    not underused, even where outside load is not counted against it."""
    starved = (4.0, 4.0, 0.2, 0.0)
    epochs = frame(epoch_rows("v", 0, [FAST, starved, FAST, FAST]))
    assert flags(epochs, noisy_threshold=math.inf) == [False] * 4
    # idle cores 0.025 above the threshold, but not by 2.326 standard errors (0.035 core)
    barely = (4.0, 4.0, 4.0 * (cores.UNDERUSED_CORES + 0.025), 0.0)
    assert flags(frame(epoch_rows("v", 0, [FAST, barely, FAST, FAST]))) == [False] * 4
    spare = (4.0, 4.0, 4.0 * (cores.UNDERUSED_CORES + 0.1), 0.0)  # 0.1 above it: by more
    assert flags(frame(epoch_rows("v", 0, [FAST, spare, FAST, FAST]))) == [
        False,
        True,
        False,
        False,
    ]


def test_a_window_whose_core_another_process_took_is_noisy_not_underused() -> None:
    took = (4.0, 4.0, 0.0, 4.0)  # one core to another process for the whole window
    came_and_went = (4.0, 5.2, 1.2, 1.6)  # 0.4 core elsewhere; a thread stalled, a core idle
    runs = [
        epoch_rows("v", 0, [FAST, FAST, FAST]),
        epoch_rows("v", 1, [took, took, took]),
        epoch_rows("v", 2, [FAST, came_and_went, FAST]),
    ]
    epochs = frame(*runs)
    assert flags(epochs) == [False] * 9
    summary = summarize(epochs).set_index("seed")
    assert summary.loc[1, "noisy"] and summary.loc[1, "underused_windows"] == 0
    assert not cores.noisy_window(0.0, 4.0, 2, noise.NOISY_CORES)
    assert cores.noisy_window(1.6, 4.0, 2, noise.NOISY_CORES)


def test_the_busiest_windows_are_every_seeds() -> None:
    """A whole process can sit in the slow mode: its windows are judged against the other
    seeds', and the run is left with no steady throughput to claim."""
    epochs = frame(
        epoch_rows("v", 0, [FAST, FAST, FAST]),
        epoch_rows("v", 1, [SLOW, SLOW, SLOW]),
        epoch_rows("w", 0, [SLOW, SLOW, SLOW]),  # another variant: its own reference
    )
    assert flags(epochs) == [False] * 3 + [True] * 3 + [False] * 3
    summary = summarize(epochs).set_index(["variant", "seed"])
    assert summary.loc[("v", 1), "underused_windows"] == 3
    assert math.isnan(summary.loc[("v", 1), "samples_per_second"])
    assert summary.loc[("w", 0), "underused_windows"] == 0


def manifest(config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "config": {"epochs": 5, **(config or {})},
        "tasks": {str(s): {"n_train": N_TRAIN} for s in range(3)},
        "environment": {"cpu_count": 2},
    }


def summarize(epochs: pd.DataFrame, config: dict[str, Any] | None = None) -> pd.DataFrame:
    keys = epochs[["variant", "seed"]].drop_duplicates().itertuples(index=False)
    runs = [{"variant": v, "seed": int(s), "status": "ok"} for v, s in keys]
    steps = storage.empty_frame(storage.STEPS_COLUMNS)
    return scores.summarize(manifest(config), runs, steps, epochs, {})


def test_the_summary_counts_flagged_windows_and_leaves_them_out_of_the_speed() -> None:
    epochs = frame(epoch_rows("v", 0, [FAST, SLOW, FAST, FAST]))
    row = summarize(epochs).iloc[0]
    assert row["underused_windows"] == 1
    assert row["cores_used"] == pytest.approx(1.9)  # the median of 1.9, 1.0, 1.9, 1.9
    assert row["samples_per_second"] == pytest.approx(3 * N_TRAIN / (3 * FAST[0]))
    # with every window kept, the slow one would pull the speed down
    assert scores.steady_throughput(N_TRAIN, epochs["seconds"].tolist()) < 0.9 * (N_TRAIN / 2)


def test_the_threshold_is_read_from_the_manifest() -> None:
    epochs = frame(epoch_rows("v", 0, [FAST, SLOW, FAST, FAST]))
    high = {"underused_threshold": 0.95, "slowed_threshold": 0.6}  # SLOW, 0.5x, in this band
    assert summarize(epochs, high).iloc[0]["underused_windows"] == 0
    assert summarize(epochs, {"underused_threshold": 0.5}).iloc[0]["underused_windows"] == 1
    # below the recorded band (0.10 here), a window whose idle cores explain half of it
    assert summarize(epochs, {"underused_threshold": 0.95}).iloc[0]["underused_windows"] == 1
    assert scores.recorded_underused_threshold({}) == cores.UNDERUSED_CORES
    # the CPUs the standard errors count are the folder's, not those of the machine reading it
    assert scores.recorded_cpus(manifest(), epochs) == 2
    assert scores.recorded_cpus({}, epochs) == 2  # 1.9 + 0.1 idle cores: two CPUs' worth


def test_a_folder_from_before_the_readings_reads_and_flags_nothing(tmp_path: Path) -> None:
    old = frame(epoch_rows("v", 0, [FAST, SLOW, FAST])).drop(
        columns=["own_cpu_seconds", "idle_cpu_seconds"]
    )
    old.to_csv(tmp_path / storage.EPOCHS, index=False)
    (tmp_path / storage.MANIFEST).write_text(json.dumps({"schema_version": 1, "runs": []}))
    epochs = storage.load_results(tmp_path).epochs
    assert epochs["own_cpu_seconds"].isna().all() and epochs["idle_cpu_seconds"].isna().all()
    assert flags(epochs) == [False] * 3
    row = summarize(epochs).iloc[0]
    assert pd.isna(row["underused_windows"]) and pd.isna(row["cores_used"])
    assert row["samples_per_second"] == pytest.approx(3 * N_TRAIN / 8.0)  # nothing left out


# -- the report --------------------------------------------------------------------------------


@pytest.fixture()
def doctored(tmp_path: Path) -> Path:
    """The committed small_a folder, with tf2_function's steady windows given CPU readings:
    1.9 cores in every window but seed 1 epoch 3, which used 1 core while 1 stood idle."""
    return doctor(tmp_path, SLOW)


def doctor(tmp_path: Path, odd: tuple[float, float, float, float]) -> Path:
    """The committed small_a folder, tf2_function's steady windows FAST but seed 1 epoch 3,
    which is `odd` (seconds, own, idle and foreign CPU seconds)."""
    out = tmp_path / "small_a"
    shutil.copytree(ROOT / "tests" / "fixtures" / "results" / "small_a", out)
    stored = storage.load_results(out)
    epochs = stored.epochs.copy()
    mine = (epochs["variant"] == "tf2_function") & (epochs["epoch"] > 1)
    for i in epochs.index[mine]:
        seconds, own, idle, foreign = odd if (epochs.at[i, "seed"], epochs.at[i, "epoch"]) == (
            1, 3) else FAST  # fmt: skip
        n = stored.manifest["tasks"][str(epochs.at[i, "seed"])]["n_train"]
        epochs.loc[i, ["seconds", "samples_per_second", "own_cpu_seconds"]] = [
            seconds, n / seconds, own]  # fmt: skip
        epochs.loc[i, ["idle_cpu_seconds", "foreign_cpu_seconds"]] = [idle, foreign]
    sources = {r["variant"]: {"api_level": r["api_level"], "loc": r["loc"],
                              "sha256": r["source_sha256"]}
               for r in stored.summary.to_dict("records")}  # fmt: skip
    m = stored.manifest
    summary = scores.summarize(m, m["runs"], stored.steps, epochs, sources)
    storage.save_results(storage.Results(out, m, stored.steps, epochs, summary))
    return out


def test_the_report_shows_underused_windows_and_leaves_them_out_of_speed(doctored) -> None:
    summary = storage.load_results(doctored).summary.set_index(["variant", "seed"])
    assert summary.loc[("tf2_function", 1), "underused_windows"] == 1
    assert summary.loc[("tf2_function", 0), "underused_windows"] == 0
    data = combine([reader.read_results(doctored)])
    speeds = throughput_by_label(data)["tf2_function"]
    n = data.sets[0].manifest["tasks"]["1"]["n_train"]
    assert n / SLOW[0] not in speeds and np.sum(speeds == n / FAST[0]) == 5
    flagged = underused_windows(data)
    assert flagged[["label", "seed", "epoch"]].values.tolist() == [["tf2_function", 1, 3]]
    assert flagged["busiest"].iloc[0] == pytest.approx(1.9)
    noise_finding = next(f.sentence for f in verdict(data) if f.topic == "Noise")
    assert "1 window(s) left cores idle" in noise_finding
    assert "tf2_function seed 1 epoch 3 (1.00 of 1.90 cores)" in noise_finding


# -- real windows --------------------------------------------------------------------------------


def run_worker(tmp_path: Path, variant: str, epochs: int) -> pd.DataFrame:
    """`variant` through the worker's own training loop, in this process; its epoch rows."""
    task = make_task(load_digits(), (16,), epochs, seed=0)
    task.save(tmp_path / "task.npz")
    config = worker.WorkerConfig(
        task_path=str(tmp_path / "task.npz"),
        variant=variant,
        variant_path=variant,
        optimizer=optimizer_to_dict(SGD(0.1)),
        batch_size=128,
        epochs=epochs,
        device="cpu",
    )
    stream = io.StringIO()
    end = worker.train(config, worker.Events(stream), started=0.0)
    assert end["event"] == "done"
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    rows = pd.DataFrame([e for e in events if e["event"] == "epoch"])
    return rows.assign(variant=variant, seed=0)


def judged(rows: pd.DataFrame) -> pd.DataFrame:
    cpus = os.cpu_count() or 1
    return rows.assign(
        cores=rows["own_cpu_seconds"] / rows["seconds"],
        idle=rows["idle_cpu_seconds"] / rows["seconds"],
        foreign=rows["foreign_cpu_seconds"] / rows["seconds"],
        underused=scores.underused_rows(rows, cpus),
    )


needs_proc = pytest.mark.skipif(noise.read().idle is None, reason="no /proc/stat here")


@pytest.mark.serial
@needs_proc
def test_the_worker_records_its_own_and_the_idle_cpu(tmp_path: Path) -> None:
    """Own + foreign + idle CPU is every CPU's time over the window, to a few ticks."""
    rows = judged(run_worker(tmp_path, "tests.thread_variants:AlwaysTwo", 3))
    steady = rows[rows["epoch"] > 1]
    total = steady["own_cpu_seconds"] + steady["foreign_cpu_seconds"] + steady["idle_cpu_seconds"]
    cpus = os.cpu_count() or 1
    assert np.allclose(total, cpus * steady["seconds"], atol=0.05), (total, steady["seconds"])
    assert (steady["cores"] > 0.3).all()  # its own CPU is not taken for the rest's
    quiet = steady[steady["foreign"] < 0.1] if cpus >= 2 else steady.iloc[:0]
    assert (quiet["cores"] > 1.6).all(), quiet  # both threads counted, where both could run
    assert not steady["underused"].any()  # a clean run is not flagged


@pytest.mark.serial
@needs_proc
def test_a_real_window_that_left_a_core_idle_is_flagged(tmp_path: Path) -> None:
    """Two busy threads in epochs 2 and 4, one in epoch 3 while the other sleeps: epoch 3 is
    flagged wherever the machine let the variant use two cores and then had one to spare."""
    rows = judged(run_worker(tmp_path, "tests.thread_variants:OddEpochsOne", 4)).set_index("epoch")
    two, one = rows.loc[[2, 4]], rows.loc[3]
    if two["cores"].min() < 1.6 or one["idle"] < 0.7 or one["foreign"] > 0.1:
        busy = f"two threads used {two['cores'].round(2).tolist()} cores"
        pytest.skip(f"the machine was busy: {busy}; with one, {one['idle']:.2f} idle")
    assert rows["underused"].tolist() == [False, False, True, False]


@pytest.mark.serial
@needs_proc
def test_a_clean_numpy_scratch_run_on_digits_has_no_flagged_window(tmp_path: Path) -> None:
    rows = judged(run_worker(tmp_path, "numpy_scratch", 8))
    assert rows["own_cpu_seconds"].notna().all() and rows["idle_cpu_seconds"].notna().all()
    assert not rows["underused"].any()


@pytest.mark.serial
@pytest.mark.system
def test_a_suite_counts_flagged_windows_and_the_report_shows_them(tmp_path: Path) -> None:
    """The real thing: `mlpbench run` with the reference and the thread variants, under the
    default thread placement, then `mlpbench report`. The reference and the clean variant are
    never flagged; the odd epochs of OddEpochsOne are underused and those of OddEpochsDearer
    slowed, wherever the machine let the variant keep both cores busy in its even epochs."""
    out = tmp_path / "suite"
    args = ["--hidden", "16", "--epochs", "5", "--seeds", "0", "--no-calibrate"]
    variants = [a for v in ("AlwaysTwo", "OddEpochsOne", "OddEpochsDearer")
                for a in ("--variant", f"tests.thread_variants:{v}")]  # fmt: skip
    result = mlpbench("run", *args, "--variants", "numpy_scratch", *variants, "--out", str(out))
    assert result.returncode == 0, result.stderr
    stored = storage.load_results(out)
    assert stored.manifest["config"]["underused_threshold"] == cores.UNDERUSED_CORES
    assert stored.manifest["config"]["slowed_threshold"] == cores.SLOWED_FRACTION
    summary = stored.summary.set_index("variant")
    for clean in ("numpy_scratch", "tests.thread_variants:AlwaysTwo"):
        assert summary.loc[clean, "underused_windows"] == 0, summary.loc[clean].to_dict()
        assert summary.loc[clean, "slowed_windows"] == 0, summary.loc[clean].to_dict()
    two = judged(stored.epochs[stored.epochs["variant"].str.endswith("AlwaysTwo")])
    assert (two[two["epoch"] > 1]["cores"] > 1.6).all() or (two["foreign"] > 0.1).any(), two
    for name, flag in (("OddEpochsOne", "underused"), ("OddEpochsDearer", "slowed")):
        rows = stored.epochs[stored.epochs["variant"].str.endswith(name)]
        odd = judged(rows).assign(slowed=scores.recorded_flags(stored.manifest, rows)["slowed"])
        steady = odd[odd["epoch"] > 1]
        if (steady["foreign"] > 0.1).any():
            pytest.skip(f"another process used the CPU during {name}'s epochs")
        flagged = steady[flag].tolist()
        assert flagged == [e % 2 == 1 for e in steady["epoch"]], (name, steady.to_dict())
        other = "slowed" if flag == "underused" else "underused"
        assert not steady[other].any(), (name, steady.to_dict())
        assert summary.loc[f"tests.thread_variants:{name}", f"{flag}_windows"] == 2
    result = mlpbench("report", str(out), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert "left cores idle" in page and "spent more CPU time on each sample" in page


def test_a_suite_from_before_the_threshold_was_recorded_resumes(tmp_path: Path) -> None:
    parsed = build_parser().parse_args(["run", "--out", str(tmp_path / "r")])
    config = make_config(parsed, [])
    assert config.to_manifest()["underused_threshold"] == cores.UNDERUSED_CORES
    older = {k: v for k, v in config.to_manifest().items() if k != "underused_threshold"}
    check_resumable(config, {"config": older})
    changed = {**older, "underused_threshold": 0.5}
    with pytest.raises(SuiteError, match="underused_threshold=0.5"):
        check_resumable(config, {"config": changed})
