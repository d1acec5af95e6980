"""Slowed windows: a timed window that kept its cores busy, but in which each sample cost the
worker more CPU time than in its variant's median window and that ran slower for it, is
flagged, counted in summary.csv, shown in the report, left out of speed claims and named as
the cause of the slow windows it explains; a clean window, one that merely burned more CPU
on a spare core without running slower, an underused one, one disturbed by outside load, and
one too short for the tick are not."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.measure import cores
from harness.report.data import combine, repeatability, slowed_windows, throughput_by_label
from harness.report.verdict import verdict
from harness.results import reader, scores, storage

from .test_underused import (
    FAST,
    N_TRAIN,
    SLOW,
    doctor,
    epoch_rows,
    frame,
    judged,
    needs_proc,
    run_worker,
    summarize,
)

DEARER = (3.0, 5.7, 0.3, 0.0)  # both cores busy (1.9), each sample 1.5x the CPU time: slower
SPINNING = (2.0, 4.6, 0.0, 0.0)  # more CPU per sample (2.3 cores), yet as fast as FAST
LOADED = (3.0, 3.9, 0.0, 2.1)  # slower, but another process took 0.7 core of the window


def slowed(epochs: pd.DataFrame, **kwargs) -> list[bool]:
    """The steady windows' slowed flags, in row order (warm-up rows are never flagged)."""
    flags = scores.recorded_flags({"config": kwargs, "environment": {"cpu_count": 2}}, epochs)
    assert not flags["slowed"][epochs["epoch"] == 1].any()
    assert not (flags["slowed"] & flags["underused"]).any()  # one cause per window
    return flags["slowed"][epochs["epoch"] > 1].tolist()


def test_a_window_whose_samples_cost_more_cpu_is_flagged_and_clean_ones_are_not() -> None:
    assert slowed(frame(epoch_rows("v", 0, [FAST, DEARER, FAST, FAST]))) == [
        False, True, False, False,
    ]  # fmt: skip
    assert slowed(frame(epoch_rows("v", 0, [FAST, FAST, FAST, FAST]))) == [False] * 4
    # a tenth dearer is the band; a twentieth is within it
    near = (2.1, 3.8 * 1.05 * 2.1 / 2.0 / 1.05, 0.2, 0.0)  # 5 % slower, 5 % dearer (1.9 cores)
    assert slowed(frame(epoch_rows("v", 0, [FAST, near, FAST, FAST]))) == [False] * 4
    assert slowed(frame(epoch_rows("v", 0, [FAST, DEARER, FAST])), slowed_threshold=0.6) == [
        False, False, False,
    ]  # fmt: skip


def test_a_window_below_the_band_mostly_from_dearer_samples_is_slowed() -> None:
    """As a real tf2_multiworker window on Fashion-MNIST: 0.90x the median's speed, 0.98 of
    its cores, 9 % more CPU time per sample. Neither a tenth dearer nor underused, it is slow
    by the band and the dearer CPU explains most of it. 3 % slower for the same 9 % (its
    cores busier) stays within the band and is not flagged."""
    seconds = 2.0 / 0.895
    below = (seconds, 3.8 * 1.09, seconds * 2 - 3.8 * 1.09, 0.0)  # 1.09x FAST's own CPU
    assert slowed(frame(epoch_rows("v", 0, [FAST, below, FAST, FAST]))) == [
        False,
        True,
        False,
        False,
    ]
    within = (2.0 / 0.97, 3.8 * 1.09, 2 * 2.0 / 0.97 - 3.8 * 1.09, 0.0)
    assert slowed(frame(epoch_rows("v", 0, [FAST, within, FAST, FAST]))) == [False] * 4


def test_burning_cpu_without_running_slower_underused_and_loaded_windows_are_not_slowed() -> None:
    epochs = frame(epoch_rows("v", 0, [FAST, SPINNING, SLOW, LOADED, FAST, FAST]))
    flags = scores.recorded_flags({"environment": {"cpu_count": 2}}, epochs)
    steady = flags[epochs["epoch"] > 1]
    assert steady["slowed"].tolist() == [False] * 6
    assert steady["underused"].tolist() == [False, False, True, False, False, False]


def test_a_short_window_cannot_be_judged() -> None:
    """At 10 ms, a window's own CPU is a tick or two: its cost per sample is not known to a
    tenth. The same proportions over a second are."""

    def scaled(t: float) -> list:
        return [(w[0] * t, w[1] * t, w[2] * t, w[3] * t) for w in (FAST, DEARER, FAST, FAST)]

    assert slowed(frame(epoch_rows("v", 0, scaled(0.005)))) == [False] * 4
    assert slowed(frame(epoch_rows("v", 0, scaled(0.5)))) == [False, True, False, False]


def test_the_summary_counts_slowed_windows_and_leaves_them_out_of_the_speed() -> None:
    epochs = frame(epoch_rows("v", 0, [FAST, DEARER, FAST, FAST]))
    row = summarize(epochs).iloc[0]
    assert row["slowed_windows"] == 1 and row["underused_windows"] == 0
    assert row["samples_per_second"] == pytest.approx(N_TRAIN / FAST[0])
    assert scores.recorded_slowed_threshold({}) == cores.SLOWED_FRACTION


@pytest.fixture
def doctored(tmp_path: Path) -> Path:
    """The committed small_a folder, tf2_function's seed 1 epoch 3 a slowed window."""
    return doctor(tmp_path, DEARER)


def test_the_report_shows_slowed_windows_and_leaves_them_out_of_speed(doctored) -> None:
    summary = storage.load_results(doctored).summary.set_index(["variant", "seed"])
    assert summary.loc[("tf2_function", 1), "slowed_windows"] == 1
    assert summary.loc[("tf2_function", 0), "slowed_windows"] == 0
    data = combine([reader.read_results(doctored)])
    speeds = throughput_by_label(data)["tf2_function"]
    n = data.sets[0].manifest["tasks"]["1"]["n_train"]
    assert n / DEARER[0] not in speeds and np.sum(speeds == n / FAST[0]) == 5
    flagged = slowed_windows(data)
    assert flagged[["label", "seed", "epoch"]].values.tolist() == [["tf2_function", 1, 3]]
    assert flagged["cost"].iloc[0] == pytest.approx(DEARER[1] / FAST[1])
    noise_finding = next(f.sentence for f in verdict(data) if f.topic == "Noise")
    assert "1 window(s) kept their cores busy but spent more CPU time" in noise_finding
    assert "tf2_function seed 1 epoch 3 (1.50× the CPU time per sample)" in noise_finding
    table = repeatability(data).set_index("label")
    assert table.loc["tf2_function", "slow"] == 1
    assert table.loc["tf2_function", "slow_flagged"] == 1
    sentence = next(f.sentence for f in verdict(data) if f.topic == "Repeatability")
    assert "were flagged with their cause" in sentence and "no flag explains" not in sentence


@pytest.mark.serial
@needs_proc
def test_a_real_window_whose_samples_cost_more_cpu_is_flagged(tmp_path: Path) -> None:
    """Two busy threads in every epoch, working twice as long in epoch 3: epoch 3 is flagged
    slowed (not underused) wherever the machine let the variant keep two cores busy."""
    for attempt in range(3):  # another process' burst (a test's processes ending) passes
        folder = tmp_path / str(attempt)
        folder.mkdir()
        rows = judged(run_worker(folder, "tests.thread_variants:OddEpochsDearer", 4))
        rows = rows.set_index("epoch")
        if rows.loc[2:, "cores"].min() >= 1.6 and rows.loc[2:, "foreign"].max() <= 0.1:
            break
    else:
        busy = (
            f"two threads used {rows.loc[2:, 'cores'].round(2).tolist()} cores, other processes "
            f"{rows.loc[2:, 'foreign'].round(2).tolist()} CPU seconds"
        )
        pytest.skip(f"the machine was busy in 3 attempts: {busy}")
    # the worker's events carry no throughput (the runner adds it): every epoch trains the same
    # samples, so any count gives the same costs relative to the median window
    epochs = rows.reset_index().assign(samples_per_second=N_TRAIN / rows["seconds"].to_numpy())
    cpus = os.cpu_count() or 1
    flags = scores.slowed_rows(epochs, cpus, epochs["underused"])
    assert flags.tolist() == [False, False, True, False]
    assert not epochs["underused"].any()
