"""Training throughput of every variant, side by side, with the GEMM roofline in the same table.

Each benchmark builds its variant once and warms it up outside the timed part, then times
rounds of `train_epoch` on one fixed array of `steps` full batches. Rows are grouped per batch
size and model, so pytest-benchmark's table compares the API levels directly; the rows
`gemm_roofline[numpy|tensorflow]` time only the same number of steps' matrix products.

Nothing here asserts a speed: the targets are read from the report (extra_info and the
roofline table printed at the end), never turned into failing tests.

    MLPBENCH_BENCH_MODE=short pytest tests/benchmarks --benchmark-only
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import types
from typing import Any

import numpy as np
import pytest

import variants
from harness.datasets import load_digits
from harness.measure import stats
from harness.measure.calibrate import BACKENDS, CHAINS_PER_CALL, gemm_step
from harness.measure.roofline import flops_per_sample, gemm_fraction
from harness.report import bench_compare
from harness.run import cluster
from harness.run.launch import uses_framework
from harness.run.overhead import measure
from harness.task import glorot_uniform, make_task
from variants import base
from variants.base import Adam

from .conftest import (
    BASE_TREE,
    OVERHEAD,
    REPORT,
    BenchConfig,
    base_variants,
    bench_config,
    fixed_batch,
    slowdown,
    slowed,
    warm_up,
)

CONFIG = bench_config()
OPTIMIZER = Adam()


def group(config: BenchConfig, batch_size: int) -> str:
    return f"train b{batch_size} {config.widths} ({config.steps(batch_size)} steps/round)"


def describe(config: BenchConfig, batch_size: int, task: str = "mlp") -> dict[str, Any]:
    spec = task_spec(config, task)
    return {
        "task": task,
        "mode": config.mode,
        "batch_size": batch_size,
        "layer_sizes": list(spec.layer_sizes),
        "widths": config.widths,
        "steps_per_round": config.steps(batch_size),
        "samples_per_round": config.steps(batch_size) * batch_size,
        "dataset": "random digits-like: x ~ U[0,1) float32, y ~ U{0..9} (seed 0)",
        "optimizer": repr(OPTIMIZER),
        "flops_per_sample": flops_per_sample(spec),
    }


def task_spec(config: BenchConfig, task: str, contract: Any = base) -> base.ModelSpec:
    """The benchmark's model as `task` builds it, with `contract`'s (a tree's) spec class."""
    fields = dataclasses.asdict(config.spec)
    return contract.SPECS[task](**fields) if task != "mlp" else contract.ModelSpec(**fields)


def uses_tensorflow(cls: type) -> bool:
    module = sys.modules[cls.__module__]
    imported = {m.__name__ for m in vars(module).values() if isinstance(m, types.ModuleType)}
    return uses_framework(imported)


def record_roofline(
    benchmark: Any, name: str, batch_size: int, calibration: dict[str, Any]
) -> None:
    """Median throughput of the rounds and its fraction of the measured GEMM peak."""
    info = benchmark.extra_info
    samples_per_second = info["samples_per_round"] / benchmark.stats.stats.median
    fraction = gemm_fraction(
        samples_per_second, info["flops_per_sample"], calibration["peak_gflops"]
    )
    info.update(
        samples_per_second=samples_per_second,
        gflops=samples_per_second * info["flops_per_sample"] / 1e9,
        peak_gflops=calibration["peak_gflops"],
        numpy_gflops=calibration["numpy_gflops"],
        tensorflow_gflops=calibration["tensorflow_gflops"],
        xla_gflops=calibration["xla_gflops"],
        roofline_fraction=fraction,
    )
    REPORT.append({"name": name, **info})


def epoch(
    cls: type, config: BenchConfig, batch_size: int, contract: Any = base, task: str = "mlp"
) -> Any:
    """A built `cls` and one call of its `train_epoch` on the fixed batches, as the harness
    times it: until the losses are in host memory. `contract`: the variants/base.py of the
    tree `cls` comes from, whose spec and Adam it is built with; `task` the model family."""
    x, y = fixed_batch(config, batch_size)
    spec = task_spec(config, task, contract)
    x = spec.inputs(x) if task != "mlp" else x  # the harness makes a task's inputs
    weights = glorot_uniform(task_spec(config, task), np.random.default_rng(0))
    variant = cls()
    variant.build(spec, contract.Adam(**dataclasses.asdict(OPTIMIZER)), weights)

    def run() -> None:
        np.asarray(variant.train_epoch(x, y, batch_size))

    return run


# in this process: distributed variants start TensorFlow their own way (test_distributed.py)
SINGLE = [n for n in variants.REGISTRY if cluster.layout(variants.REGISTRY[n]) == "single"]
# wide & deep: every variant that can express the model (Sequential records that it cannot)
WIDE_DEEP = [n for n in variants.WIDE_DEEP if n != "keras_sequential"]
# the baseline commit's classes and contract, when .ci/bench gives its tree
BASE, BASE_CONTRACT = base_variants(SINGLE)
BASE_WIDE_DEEP, BASE_WIDE_DEEP_CONTRACT = base_variants(WIDE_DEEP, task="wide-deep")


@pytest.mark.parametrize("batch_size", CONFIG.batch_sizes, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("name", SINGLE)
def test_train_steps(benchmark, name, batch_size, config, calibration):
    train_steps(benchmark, name, "mlp", batch_size, config, calibration)


@pytest.mark.parametrize("batch_size", CONFIG.batch_sizes, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("name", WIDE_DEEP)
def test_train_steps_wide_deep(benchmark, name, batch_size, config, calibration):
    """The wide & deep model of the same widths (--task wide-deep), at every level that can
    express it."""
    train_steps(benchmark, name, "wide-deep", batch_size, config, calibration)


def train_steps(benchmark, name, task, batch_size, config, calibration):
    cls = variants.load(variants.resolve(name, task))
    run = epoch(cls, config, batch_size, task=task)
    backend = "tensorflow" if uses_tensorflow(cls) else "numpy"
    if extra := slowdown(name):
        run = slowed(run, extra, gemm_step(backend, config.spec, batch_size))
    round_seconds = warm_up(run)
    benchmark.group = group(config, batch_size) + ("" if task == "mlp" else f" {task}")
    benchmark.extra_info.update(describe(config, batch_size, task), api_level=cls.api_level)
    based, contract = (
        (BASE, BASE_CONTRACT) if task == "mlp" else (BASE_WIDE_DEEP, BASE_WIDE_DEEP_CONTRACT)
    )
    if name in based:
        base_run = epoch(based[name], config, batch_size, contract, task)
        interleaved(benchmark, run, base_run, round_seconds, config)
        return
    # The machine's speed, measured before every round in the same process: the same steps'
    # GEMMs in the variant's own framework (NumPy's BLAS or TensorFlow's graph). A round's
    # time over its reference's is comparable across runs and machines (tests/benchmarks/
    # README.md), which the gate (harness/report/bench_compare.py) compares.
    gemms = gemm_step(backend, config.spec, batch_size)
    calls = max(1, config.steps(batch_size) // (CHAINS_PER_CALL if backend != "numpy" else 1))
    references: list[float] = []

    def reference() -> None:
        gemms()  # untimed: wakes the framework's threads, whatever ran before
        t0 = time.perf_counter()
        for _ in range(calls):
            gemms()
        references.append(time.perf_counter() - t0)

    warm_up(reference)
    references.clear()
    rounds = time_rounds(benchmark, run, reference, round_seconds, config)
    references = references[-rounds:]  # warm-up rounds ran their reference too
    benchmark.extra_info["reference"] = backend
    benchmark.extra_info["reference_seconds"] = references
    if config.calibration_seconds is not None:
        record_roofline(benchmark, name, batch_size, calibration(batch_size))


def time_rounds(
    benchmark: Any, run: Any, before: Any, round_seconds: float, config: BenchConfig
) -> int:
    """pytest-benchmark's timed rounds of `run`, `before()` right before each (untimed by it);
    returns how many rounds were timed (after the warm-up rounds)."""
    benchmark.pedantic(
        run,
        setup=before,
        rounds=config.rounds_for(round_seconds),
        warmup_rounds=config.warmup_rounds,
        iterations=1,
    )
    return len(benchmark.stats.stats.data)


def interleaved(
    benchmark: Any, run: Any, base_run: Any, round_seconds: float, config: BenchConfig
) -> None:
    """This tree's rounds (pytest-benchmark's), each right after one of the baseline's: the two
    codes share the process, its thread pools and the machine's moment, so what differs between
    a pair is the code. The baseline's times go to `extra_info["base_seconds"]`, pair by pair."""
    warm_up(base_run)
    base_seconds: list[float] = []

    def base_round() -> None:
        t0 = time.perf_counter()
        base_run()
        base_seconds.append(time.perf_counter() - t0)

    rounds = time_rounds(benchmark, run, base_round, round_seconds, config)
    base_seconds = base_seconds[-rounds:]  # warm-up rounds had theirs
    times = benchmark.stats.stats.data
    benchmark.extra_info["base_seconds"] = base_seconds
    benchmark.extra_info["base_tree"] = os.environ[BASE_TREE]
    # what the gate judges (harness/report/bench_compare.py), for a reader of the JSON
    ratio = stats.ratio_of_medians(base_seconds, times, quantile=bench_compare.QUANTILE).ratio
    benchmark.extra_info["ratio_to_base"] = ratio


@pytest.mark.parametrize("batch_size", CONFIG.batch_sizes, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_gemm_roofline(benchmark, backend, batch_size, config, calibration):
    """The same steps' GEMMs alone: the floor every variant's row is compared against."""
    if config.calibration_seconds is None:
        pytest.skip(f"no roofline in the {config.mode} mode: MLPBENCH_BENCH_MODE=full")
    step = gemm_step(backend, config.spec, batch_size)
    steps = config.steps(batch_size)

    def run() -> None:
        for _ in range(steps):
            step()

    round_seconds = warm_up(run)
    benchmark.group = group(config, batch_size)
    benchmark.extra_info.update(describe(config, batch_size), api_level=f"GEMMs only ({backend})")
    benchmark.pedantic(
        run,
        rounds=config.rounds_for(round_seconds),
        warmup_rounds=config.warmup_rounds,
        iterations=1,
    )
    record_roofline(benchmark, f"gemm_roofline[{backend}]", batch_size, calibration(batch_size))


@pytest.mark.parametrize("name", CONFIG.overhead_variants)
def test_harness_overhead(benchmark, name, config):
    """Harness/bare throughput ratio (harness.run.overhead), reported in extra_info; the time of
    the row is only how long the measurement took."""
    task = make_task(load_digits(), config.overhead_hidden, config.overhead_epochs, seed=0)
    benchmark.group = "harness overhead (digits, batch 128)"
    # both sides with the suite's default placement (the last benchmarks of a session: the
    # threads it pins stay pinned)
    result = benchmark.pedantic(
        measure,
        args=(name, task, 128, config.overhead_rounds),
        kwargs={"thread_affinity": "round-robin"},
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info.update(
        {k: v for k, v in result.items() if not isinstance(v, list)},
        ratios=result["ratios"],
    )
    OVERHEAD.append(result)
