"""Benchmark configuration: which model, batch sizes and rounds, chosen by
MLPBENCH_BENCH_MODE (`full`, the default, or `short` for CI), and the machine calibration the
roofline fractions are computed against, measured once per session."""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.measure.calibrate import calibrate
from variants.base import ModelSpec


@dataclass(frozen=True)
class BenchConfig:
    mode: str
    spec: ModelSpec
    batch_sizes: tuple[int, ...]
    # Every round trains the same number of samples at every batch size, so a row's time is
    # comparable across batch sizes: 2560 samples = 20 steps at 128, 80 at 32, 5 at 512.
    samples_per_round: int
    # At least `rounds` and at least `min_seconds` of them (capped at `max_rounds`): a fast
    # variant gets many short rounds, whose median a burst of load moves less.
    rounds: int
    min_seconds: float
    max_rounds: int
    warmup_rounds: int
    # The GEMM calibration behind each row's roofline fraction (harness.measure.calibrate), or
    # None: no roofline in this mode.
    calibration_seconds: float | None
    # The harness-overhead report (harness.run.overhead) on digits: variants, widths, epochs per
    # block (the first untimed) and ABBA rounds.
    overhead_variants: tuple[str, ...]
    overhead_hidden: tuple[int, ...]
    overhead_epochs: int
    overhead_rounds: int

    @property
    def widths(self) -> str:
        return "-".join(str(n) for n in self.spec.layer_sizes)

    def steps(self, batch_size: int) -> int:
        return max(1, self.samples_per_round // batch_size)

    def rounds_for(self, round_seconds: float) -> int:
        wanted = math.ceil(self.min_seconds / max(round_seconds, 1e-9))
        return min(self.max_rounds, max(self.rounds, wanted))


CONFIGS = {
    # The task the targets are stated for: 784-512-256-10, batch 128, with 32 and 512 beside it.
    "full": BenchConfig(
        mode="full",
        spec=ModelSpec(input_size=784, hidden=(512, 256), num_classes=10),
        batch_sizes=(32, 128, 512),
        samples_per_round=2560,
        rounds=15,
        min_seconds=2.0,
        max_rounds=200,
        warmup_rounds=2,
        calibration_seconds=3.0,
        overhead_variants=("numpy_scratch", "tf2_function"),
        overhead_hidden=(512, 256),
        overhead_epochs=6,
        overhead_rounds=10,
    ),
    # CI: one batch size, a model wide enough that a step's GEMMs outweigh its Python overhead
    # (784-256-128: ~1 MFLOP per sample) yet every variant, timed beside the baseline's code in
    # alternate rounds, fits in about 2 minutes on 2 cores.
    "short": BenchConfig(
        mode="short",
        spec=ModelSpec(input_size=784, hidden=(256, 128), num_classes=10),
        batch_sizes=(128,),
        samples_per_round=2560,  # 20 steps: fit's per-call set-up weighs less than at 10
        # per side: enough for the lower quartile to stay clear of the rounds of tf.data and
        # Keras fit that take a fixed 75 ms more, up to half of them in a run
        rounds=25,
        min_seconds=0.5,
        max_rounds=200,
        warmup_rounds=1,
        # None: the gate judges rounds against the baseline's or their own GEMM references,
        # never the roofline, and the calibration took 5.9 s of each such process (Intel Xeon);
        # the roofline fractions are the full mode's.
        calibration_seconds=None,
        # None: on a digits-sized model an epoch lasts milliseconds and a block's ratio moves
        # 3x with the load, and the row's time (how long the measurement took) varied by 190 %
        # between runs, which the baseline comparison would flag at random.
        overhead_variants=(),
        overhead_hidden=(64, 32),
        overhead_epochs=3,
        overhead_rounds=5,
    ),
}


def bench_config() -> BenchConfig:
    mode = os.environ.get("MLPBENCH_BENCH_MODE", "full")
    if mode not in CONFIGS:
        raise pytest.UsageError(f"MLPBENCH_BENCH_MODE={mode!r}: use one of {', '.join(CONFIGS)}")
    return CONFIGS[mode]


@pytest.fixture(scope="session")
def config() -> BenchConfig:
    return bench_config()


_calibrations: dict[int, dict[str, Any]] = {}


@pytest.fixture(scope="session")
def calibration(config: BenchConfig):
    """GEMM throughput per batch size, measured on first use and kept for the session."""

    def get(batch_size: int) -> dict[str, Any]:
        if batch_size not in _calibrations:
            _calibrations[batch_size] = calibrate(
                config.spec, batch_size, min_seconds=config.calibration_seconds
            )
        return _calibrations[batch_size]

    return get


def fixed_batch(config: BenchConfig, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random digits-like data, the same on every run: pixels uniform in [0, 1), labels uniform
    over the classes, exactly `steps` full batches (no short last batch, so one trace)."""
    rng = np.random.default_rng(0)
    n = config.steps(batch_size) * batch_size
    x = rng.random((n, config.spec.input_size), dtype=np.float32)
    y = rng.integers(0, config.spec.num_classes, size=n, dtype=np.int64)
    return x, y


def slowdown(name: str) -> float:
    """MLPBENCH_BENCH_SLOWDOWN=variant:fraction[,variant:fraction...] (`*` for every variant)
    makes those variants' rounds that much slower with real extra work (`slowed`): how the gate
    is shown to catch a regression. Only this tree's rounds, never the baseline's."""
    value = os.environ.get("MLPBENCH_BENCH_SLOWDOWN", "")
    fractions = {}
    for item in filter(None, value.split(",")):
        variant, _, fraction = item.rpartition(":")
        try:
            fractions[variant] = float(fraction)
        except ValueError:
            raise pytest.UsageError(
                f"MLPBENCH_BENCH_SLOWDOWN={value!r}: use variant:fraction[,variant:fraction]"
            ) from None
    return fractions.get(name, fractions.get("*", 0.0))


def slowed(
    run: Callable[[], None], fraction: float, extra_work: Callable[[], object]
) -> Callable[[], None]:
    """`run` made `fraction` slower with real extra work after each call: `extra_work` (the
    step's GEMMs in the variant's own framework) repeated for `fraction` of the call's own time.
    Framework work, not a Python busy loop: the thread pools stay busy through it, so the
    baseline's round that follows starts as it always does, and what slows is only this
    variant, by `fraction` of each call, whatever the call took."""

    def run_with_extra_work() -> None:
        t0 = time.perf_counter()
        run()
        end = time.perf_counter() + fraction * (time.perf_counter() - t0)
        while time.perf_counter() < end:
            extra_work()

    return run_with_extra_work


BASE_TREE = "MLPBENCH_BENCH_BASE"


def base_variants(names: list[str], task: str = "mlp") -> tuple[dict[str, type], Any]:
    """MLPBENCH_BENCH_BASE=TREE: the variant classes of another checkout of this project (the
    baseline commit), imported into this process beside this tree's own, so that every
    benchmark times the baseline's code and this tree's in alternate rounds of one process.

    The baseline's `variants` package is imported under its usual name while TREE is first on
    sys.path, then moved out of sys.modules: its classes keep their own modules (and so their
    own `variants.base`, helpers and imports), and this tree's `variants` is put back. A
    baseline from before `task` existed has none of its variants: they are timed alone."""
    tree = os.environ.get(BASE_TREE)
    if not tree:
        return {}, None
    if not (Path(tree) / "variants" / "__init__.py").is_file():
        raise pytest.UsageError(f"{BASE_TREE}={tree!r}: no variants/ package there")

    def ours(module: str) -> bool:
        return module == "variants" or module.startswith("variants.")

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if ours(name)}
    sys.path.insert(0, str(Path(tree).resolve()))
    try:
        registry = importlib.import_module("variants")
        table = getattr(registry, "TASKS", {"mlp": registry.REGISTRY}).get(task, {})
        classes = {name: registry.load(path) for name, path in table.items() if name in names}
        return classes, sys.modules["variants.base"]
    finally:
        sys.path.pop(0)
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


def warm_up(run: Callable[[], object], calls: int = 2) -> float:
    """Call `run` untimed (tracing, compilation, thread pools, optimizer slots) and return the
    fastest call's seconds, to plan the rounds."""
    seconds = []
    for _ in range(calls):
        t0 = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
    return min(seconds[1:] or seconds)


# Roofline fractions and overhead ratios of this session, printed after pytest-benchmark's table.
REPORT: list[dict[str, Any]] = []
OVERHEAD: list[dict[str, Any]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write = terminalreporter.write_line
    if OVERHEAD:
        terminalreporter.section("harness overhead (harness / bare throughput; target 1 +- 0.02)")
        for row in OVERHEAD:
            spread = row["ratio_spread"]
            write(
                f"{row['variant']:<24} median {row['ratio_median']:.3f} "
                f"(q1 {spread['q1']:.3f}, q3 {spread['q3']:.3f}, {spread['n']} paired epochs), "
                f"best-of {row['ratio_best']:.3f}"
            )
    if not REPORT:
        return
    terminalreporter.section("roofline fraction (median throughput / measured GEMM peak)")
    write(
        f"{'variant':<24} {'batch':>5} {'samples/s':>11} {'GFLOP/s':>8} {'peak':>7} {'fraction':>8}"
    )
    for row in sorted(REPORT, key=lambda r: (r["batch_size"], -r["roofline_fraction"])):
        write(
            f"{row['name']:<24} {row['batch_size']:>5} {row['samples_per_second']:>11.0f} "
            f"{row['gflops']:>8.1f} {row['peak_gflops']:>7.1f} {row['roofline_fraction']:>8.3f}"
        )
