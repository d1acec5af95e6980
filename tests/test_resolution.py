"""Speed claims at the level where speed varies, bounded by the suite's A/A control: the ladder,
the verdict and `mlpbench compare` say "not resolved" for a difference within the largest one
measured between variants known to compute the same thing (config.aa_groups), and resolve one
beyond it; a folder from before aa_groups was recorded still reports, its intervals alone
deciding. Folders are constructed: per-process windows with the spreads measured on this
machine's quiet runs (processes 2 % apart, windows 3 % apart within a process)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report.compare import compare_dirs
from harness.report.data import combine, ladder, repeatability, resolution, throughput_by_process
from harness.report.verdict import verdict
from harness.results import storage
from harness.results.reader import read_results
from harness.run.config import RunConfig

KERAS = ("keras_sequential", "keras_functional", "keras_subclass")
SEEDS = (0, 1, 2)  # the default seeds
EPOCHS = 7  # a warm-up epoch, then 6 timed windows per process
N_TRAIN = 60_000
BASE = 20_000.0  # samples/s
AA = 0.05  # the A/A resolution the constructed Keras medians span: 20,000 to 21,000
# variant -> (level, rung): the TF2 core variants form a two-rung ladder
LADDER = {"tf2_function": ("TF2 core", 0), "tf2_epoch_function": ("TF2 core", 1)}


def windows(speed: float, rng: np.random.Generator, between: float, within: float) -> dict:
    """Each seed's timed windows: the process has a speed of its own, its windows scatter."""
    out = {}
    for seed in SEEDS:
        own = speed * (1 + between * rng.standard_normal())
        out[seed] = own * (1 + within * rng.standard_normal(EPOCHS - 1))
    return out


def exact_median(nested: dict, median: float) -> dict:
    """`nested` scaled so that its pooled median is exactly `median`: the A/A gap and the
    slowdowns are then the ones the test states, not ones the random draw made."""
    scale = median / float(np.median(np.concatenate(list(nested.values()))))
    return {seed: w * scale for seed, w in nested.items()}


def write_suite(
    path: Path,
    speeds: dict[str, float],
    *,
    seed: int = 0,
    aa_groups: list[list[str]] | None = None,
    between: float = 0.02,
    within: float = 0.03,
) -> Path:
    """A finished results folder: every variant at `speeds` samples/s (its pooled median
    exactly that), 3 seeds, 6 timed windows each; `aa_groups` as the run
    records it (None: a folder from before it was recorded)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    epochs, steps, summary, runs = [], [], [], []
    for variant, speed in speeds.items():
        nested = exact_median(windows(speed, rng, between, within), speed)
        level, rung = LADDER.get(variant, (None, None))
        for s, timed in nested.items():
            clock = 1000.0 + 100 * s
            for epoch, sps in enumerate([speed / 2, *timed], 1):  # epoch 1 holds tracing
                seconds = N_TRAIN / sps
                epochs.append(
                    {"variant": variant, "seed": s, "epoch": epoch, "train_loss": 0.5,
                     "test_loss": 0.5, "test_accuracy": 0.85, "seconds": seconds,
                     "samples_per_second": sps, "foreign_cpu_seconds": 0.0,
                     "window_start": clock, "window_end": clock + seconds}
                )  # fmt: skip
                steps.append((variant, s, epoch, epoch, 2.0 / epoch))  # one step an epoch
                clock += seconds
            summary.append(
                {"variant": variant, "seed": s, "status": "ok", "api_level": variant,
                 "device": "cpu", "level": level, "rung": rung, "test_accuracy": 0.85,
                 "test_loss": 0.5, "samples_per_second": float(np.median(timed)),
                 "first_step_seconds": 3.0, "peak_rss_mb": 600.0, "params": 2410, "loc": 40,
                 "foreign_cpu": 0.0, "foreign_cpu_se": 0.01, "noisy": False,
                 "contended": False, "attempts": 1}
            )  # fmt: skip
            runs.append({"variant": variant, "seed": s, "status": "ok", "device": "cpu"})
    pd.DataFrame(steps, columns=storage.STEPS_COLUMNS).to_csv(path / "steps.csv", index=False)
    columns = {"epochs": storage.EPOCHS_COLUMNS, "summary": storage.SUMMARY_COLUMNS}
    for name, rows in (("epochs", epochs), ("summary", summary)):
        frame = pd.DataFrame(rows).reindex(columns=columns[name])
        frame.to_csv(path / f"{name}.csv", index=False)
    config = {
        "variants": list(speeds), "dataset": "fashion-mnist", "epochs": EPOCHS,
        "batch_size": 128, "optimizer": {"kind": "adam", "lr": 0.001}, "hidden": [512, 256],
        "seeds": list(SEEDS), "device": "cpu", "parity": False, "target_accuracy": 0.99,
        "jobs": 1,
    }  # fmt: skip
    if aa_groups is not None:
        config["aa_groups"] = aa_groups
    manifest = {
        "schema_version": 1, "name": path.name, "created": "2025-01-01T10:00:00Z",
        "finished": "2025-01-01T11:00:00Z", "command": "mlpbench run", "argv": [],
        "config": config, "environment": {"cpu_count": 2},
        "tasks": {str(s): {"fingerprint": f"task{s}", "n_train": N_TRAIN, "n_test": 10_000}
                  for s in SEEDS},
        "runs": runs,
    }  # fmt: skip
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


def keras_at_aa() -> dict[str, float]:
    """The A/A group: the same computation, its medians 5 % apart."""
    return dict(zip(KERAS, (BASE, BASE * 1.025, BASE * (1 + AA)), strict=True))


def speed_sentence(path: Path) -> str:
    found = [f.sentence for f in verdict(combine([read_results(path)])) if f.topic == "Speed"]
    assert len(found) == 1
    return found[0]


# --- the resolution: recorded by the run, measured by the report ----------------------------


def test_the_run_records_only_the_groups_it_runs_in_full(tmp_path: Path) -> None:
    def config(*names: str) -> RunConfig:
        return RunConfig(
            variants=names, variant_paths=(), dataset="digits", data_dir=None, epochs=2,
            batch_size=128, optimizer=None, hidden=(32,), seeds=(0,), device="cpu",
            parity=False, target_accuracy=0.9, timeout=60, jobs=1, calibrate=False,
            out=tmp_path,
        )  # fmt: skip

    assert config("numpy_scratch", *KERAS).aa_groups == [list(KERAS)]
    assert config("numpy_scratch", "keras_sequential", "keras_functional").aa_groups == []


def test_the_resolution_is_the_largest_gap_in_the_recorded_group(tmp_path: Path) -> None:
    speeds = {**keras_at_aa(), "numpy_scratch": BASE * 1.5}
    data = combine([read_results(write_suite(tmp_path / "s", speeds, aa_groups=[list(KERAS)]))])
    aa = resolution(data)
    assert aa.value == pytest.approx(AA)
    assert aa.describe() == (
        "5.0 % (keras_sequential vs keras_functional vs keras_subclass, 3 processes each)"
    )
    assert set(throughput_by_process(data)["keras_sequential"]) == set(SEEDS)


def test_a_combined_report_takes_the_largest_resolution_of_its_sets(tmp_path: Path) -> None:
    wide = dict(zip(KERAS, (BASE, BASE, BASE * 1.08), strict=True))
    a = read_results(write_suite(tmp_path / "a", keras_at_aa(), aa_groups=[list(KERAS)]))
    b = read_results(write_suite(tmp_path / "b", wide, seed=1, aa_groups=[list(KERAS)]))
    assert resolution(combine([a, b])).value == pytest.approx(0.08)
    assert resolution(combine([a])).value == pytest.approx(AA)


# --- the verdict and the ladder -----------------------------------------------------------


@pytest.mark.parametrize(("gap", "resolved"), [(1.03, False), (1.15, True)])
def test_the_verdict_ranks_only_beyond_the_resolution(tmp_path, gap, resolved) -> None:
    # tf2_function is fastest by `gap` over tf2_epoch_function, the next
    speeds = {**keras_at_aa(), "tf2_epoch_function": BASE * 1.2, "tf2_function": BASE * 1.2 * gap}
    text = speed_sentence(write_suite(tmp_path / "s", speeds, aa_groups=[list(KERAS)]))
    assert "A/A resolution 5.0 % (keras_sequential vs keras_functional vs keras_subclass" in text
    assert "3 processes each" in text
    if resolved:
        assert "tf2_function is fastest at" in text and "the next, tf2_epoch_function" in text
    else:
        assert "tf2_function and tf2_epoch_function are not resolved" in text
        assert "is fastest" not in text and "neither is ranked" in text
    assert "the slowest, keras_sequential" in text  # 1.2× and more: resolved either way
    assert "not resolved either" not in text


def test_the_verdict_keeps_the_aa_group_itself_unranked(tmp_path: Path) -> None:
    text = speed_sentence(write_suite(tmp_path / "s", keras_at_aa(), aa_groups=[list(KERAS)]))
    assert "keras_subclass and keras_functional are not resolved" in text
    assert "not resolved either" in text  # its largest gap is the resolution itself


def control_sentence(path: Path) -> str | None:
    data = combine([read_results(path)])
    return next((f.sentence for f in verdict(data) if f.topic == "A/A control"), None)


def test_the_aa_control_says_no_difference_among_identical_computations_is_resolved(
    tmp_path: Path,
) -> None:
    # 5 % apart, processes 0.3 % apart: the interval alone tells subclass from sequential
    tight = {"between": 0.003, "within": 0.005}
    suite = write_suite(tmp_path / "s", keras_at_aa(), aa_groups=[list(KERAS)], **tight)
    text = control_sentence(suite)
    assert text.startswith(
        "keras_sequential, keras_functional and keras_subclass compute the same thing: their "
        "medians lie 5.0 % apart (keras_functional over keras_sequential 1.0"
    ), text
    assert "no difference among them is resolved" in text
    named = text.split("the interval alone excludes 1 for ")[1]
    assert "keras_subclass over keras_sequential" in named.split(":")[0]
    # processes 2 % apart: the same medians, and no interval excludes 1
    text = control_sentence(write_suite(tmp_path / "w", keras_at_aa(), aa_groups=[list(KERAS)]))
    assert "5.0 % apart" in text and "interval alone" not in text
    # the same speed: nothing to name
    same = dict.fromkeys(KERAS, BASE)
    text = control_sentence(write_suite(tmp_path / "same", same, aa_groups=[list(KERAS)]))
    assert "0.0 % apart" in text and "no difference among them is resolved" in text
    assert "interval alone" not in text
    # no group recorded: no control to speak of
    assert control_sentence(write_suite(tmp_path / "old", keras_at_aa())) is None


def test_repeatability_names_the_variants_whose_windows_scatter(tmp_path: Path) -> None:
    # windows 3 % apart lie within +-10 % of their median; 15 % apart, a third of them do not
    steady = write_suite(tmp_path / "steady", keras_at_aa(), aa_groups=[list(KERAS)])
    loose = write_suite(tmp_path / "loose", keras_at_aa(), aa_groups=[list(KERAS)], within=0.15)
    table = repeatability(combine([read_results(steady)])).set_index("label")
    assert table["windows"].eq(len(SEEDS) * (EPOCHS - 1)).all()  # the timed windows after epoch 1
    assert table["within"].min() >= 0.95
    text = next(
        f.sentence for f in verdict(combine([read_results(steady)])) if f.topic == "Repeatability"
    )
    assert "below 95 %" not in text and "slower than it" not in text
    table = repeatability(combine([read_results(loose)]))
    assert (table["within"] < 0.8).all() and table["slow_flagged"].eq(0).all()
    assert (table["slow"] > 0).all() and (table["slow"] <= table["outside"]).all()
    text = next(
        f.sentence for f in verdict(combine([read_results(loose)])) if f.topic == "Repeatability"
    )
    assert "below 95 %: " in text and "keras_sequential " in text
    slow = table["slow"].sum()
    assert f"of the {slow} window(s) slower than it, 0 were flagged with their cause" in text
    assert "the others are spread no flag explains" in text


@pytest.mark.parametrize(("gap", "verdict_word"), [(1.03, "not resolved"), (1.15, "resolved")])
def test_the_ladder_resolves_only_beyond_the_resolution(tmp_path, gap, verdict_word) -> None:
    speeds = {**keras_at_aa(), "tf2_function": BASE, "tf2_epoch_function": BASE * gap}
    data = combine([read_results(write_suite(tmp_path / "s", speeds, aa_groups=[list(KERAS)]))])
    step = ladder(data).set_index("variant").loc["tf2_epoch_function"]
    assert step["over"] == "tf2_function" and step["speed-up"] == pytest.approx(gap, rel=0.03)
    assert step["resolved"].startswith(verdict_word)
    assert step["processes"] == 3
    cost = next(f.sentence for f in verdict(data) if f.topic == "Cost ladder")
    assert ("not resolved" in cost) == (verdict_word == "not resolved")


def test_without_aa_groups_the_interval_alone_decides(tmp_path: Path) -> None:
    # Tight spreads: 3 % is outside the interval, so only the recorded resolution withholds it
    speeds = {**keras_at_aa(), "tf2_function": BASE, "tf2_epoch_function": BASE * 1.03}
    tight = {"between": 0.003, "within": 0.005}
    old = write_suite(tmp_path / "old", speeds, **tight)
    new = write_suite(tmp_path / "new", speeds, aa_groups=[list(KERAS)], **tight)
    old_data = combine([read_results(old)])
    assert math.isnan(resolution(old_data).value)
    assert resolution(old_data).describe().startswith("not measured")
    assert ladder(old_data).set_index("variant").loc["tf2_epoch_function", "resolved"] == (
        "resolved"
    )
    new_step = ladder(combine([read_results(new)])).set_index("variant")
    assert (
        new_step.loc["tf2_epoch_function", "resolved"] == "not resolved (within the A/A resolution)"
    )
    assert "A/A resolution not measured" in speed_sentence(old)


def test_a_folder_without_aa_groups_reports_and_says_so(tmp_path: Path) -> None:
    from harness.cli.report import build_report

    speeds = {**keras_at_aa(), "tf2_function": BASE, "tf2_epoch_function": BASE * 1.3}
    old = write_suite(tmp_path / "old", speeds)
    page = build_report([old], tmp_path / "report").read_text(encoding="utf-8")
    assert "<b>A/A resolution:</b> not measured" in page
    new = write_suite(tmp_path / "new", speeds, aa_groups=[list(KERAS)])
    page = build_report([new], tmp_path / "report2").read_text(encoding="utf-8")
    ladder_part = page[page.index('id="ladder"') : page.index('id="variants"')]
    assert (
        "<b>A/A resolution:</b> 5.0 % (keras_sequential vs keras_functional vs keras_subclass, "
        "3 processes each)" in ladder_part
    )


# --- compare ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slowdown", "expected"), [(0.15, "slower"), (0.03, "not resolved"), (0.0, "not resolved")]
)
def test_compare_judges_a_slowdown_against_the_resolution(tmp_path, slowdown, expected) -> None:
    speeds = {**keras_at_aa(), "tf2_function": BASE * 1.2}
    a = write_suite(tmp_path / "a", speeds, seed=10, aa_groups=[list(KERAS)])
    slowed = {**speeds, "tf2_function": speeds["tf2_function"] * (1 - slowdown)}
    b = write_suite(tmp_path / "b", slowed, seed=11, aa_groups=[list(KERAS)])
    result = compare_dirs(a, b)
    assert result.resolution == pytest.approx(AA)
    tf2 = next(c for c in result.changes if c.variant == "tf2_function")
    assert tf2.verdict == expected
    assert tf2.throughput.speed.processes == (3, 3)
    assert tf2.throughput.ratio == pytest.approx(1 - slowdown)
    assert [c.variant for c in result.regressions] == (
        ["tf2_function"] if expected == "slower" else []
    )


@pytest.mark.parametrize(
    ("slowdown", "aa_groups", "expected"),
    [
        (0.10, None, "slower"),
        (0.03, None, "within threshold"),  # resolved by the interval, but under 5 %
        (0.03, [list(KERAS)], "not resolved"),  # the same 3 %, within the suite's resolution
    ],
)
def test_compare_without_aa_groups_lets_the_interval_decide(
    tmp_path, slowdown, aa_groups, expected
) -> None:
    # tight spreads: the interval alone would resolve 3 %
    tight = {"between": 0.003, "within": 0.005, "aa_groups": aa_groups}
    speeds = {**keras_at_aa(), "tf2_function": BASE}
    a = write_suite(tmp_path / "a", speeds, seed=10, **tight)
    slowed = {**speeds, "tf2_function": BASE * (1 - slowdown)}
    b = write_suite(tmp_path / "b", slowed, seed=11, **tight)
    result = compare_dirs(a, b)
    assert math.isnan(result.resolution) == (aa_groups is None)
    assert {c.variant: c.verdict for c in result.changes}["tf2_function"] == expected
