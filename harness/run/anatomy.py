"""One variant's step, part by part, in a process of its own: build the task as a suite does,
warm up, time the steps unprofiled, then profile the same steps and print the breakdown as
JSON.

    python -m harness.run.anatomy --variant tf1_graph --dataset digits --hidden 64,32 \
        --batch-size 128 --steps 50

A TensorFlow variant is traced by TensorFlow's profiler (`tf.profiler.experimental`), whose
trace harness/measure/anatomy.py splits into parts. A variant without TensorFlow has no
framework profiler: its profiled epoch runs under cProfile, which gives the time spent in the
variant's own per-step functions (the math) and in its optimizer function (the update); the
GEMMs are the step's matrix products (harness.measure.roofline.gemm_shapes) timed alone in the
same process on arrays of the same dtype and layout. The profiler slows what it watches, which
is why a suite runs this after its timed runs (`mlpbench run --anatomy`), never during one.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import inspect
import json
import os
import pstats
import re
import sys
import tempfile
import time
from typing import Any

import numpy as np

import variants
from harness.measure import anatomy
from harness.measure.roofline import gemm_shapes
from harness.run import cluster
from harness.task import Task, input_rows, make_task
from variants.base import Adam, ModelSpec, optimizer_from_dict, optimizer_to_dict

DEFAULT_STEPS = 100  # a few seconds of the slowest single-process variant on Fashion-MNIST
# A variant's own function that updates the weights, for variants without a framework profiler.
UPDATE_FUNCTIONS = re.compile(r"^(apply|apply_gradients|update|optimizer_step|step_optimizer)$")


class AnatomyError(Exception):
    """A variant whose step cannot be broken down in one process (a distributed one)."""


def measure(
    variant_name: str,
    task: Task,
    batch_size: int,
    optimizer: Any,
    steps: int | None = DEFAULT_STEPS,
) -> dict[str, Any]:
    """Build `variant_name`, train epoch 1 untimed, then break down `steps` steady steps (the
    whole of epoch 2 if None). Returns the breakdown: seconds per step of every part of
    anatomy.PARTS, the step's wall time, coverage and method."""
    path = variants.resolve(variant_name, task.spec.task)
    if cluster.layout(path) != "single":
        raise AnatomyError(f"{variant_name} is distributed: its step spans several replicas")
    instance = variants.load(path)()
    with _device_scope():
        instance.build(task.spec, optimizer, task.init_weights)
        x, y = task.epoch_data(0)
        np.asarray(instance.train_epoch(x, y, batch_size))  # epoch 1: tracing, compilation
        x, y = task.epoch_data(1)
        n = len(y) if steps is None else min(len(y), steps * batch_size)
        x, y = input_rows(x, slice(n)), y[:n]
        n_steps = -(-n // batch_size)
        # The same call unprofiled first: it traces again if the number of samples is new, and
        # its time says how much the profiler slowed the profiled one (by 1.2x to 3.5x on
        # Fashion-MNIST: more the more ops a step runs)
        t0 = time.perf_counter()
        np.asarray(instance.train_epoch(x, y, batch_size))
        unprofiled = (time.perf_counter() - t0) / n_steps
        if uses_tensorflow(type(instance)):
            result = _profiled(instance, x, y, batch_size, n_steps)
        else:
            result = _cprofiled(instance, task.spec, x, y, batch_size, n_steps)
    result["unprofiled_step_seconds"] = unprofiled
    return {"variant": variant_name, "batch_size": batch_size, "steps": n_steps, **result}


FRAMEWORKS = ("tensorflow", "keras", "tf_keras")


def uses_tensorflow(cls: type) -> bool:
    """Whether the modules that define `cls` and its bases import TensorFlow or Keras: whether
    TensorFlow's profiler can see its step (another variant may have imported TensorFlow into
    the same process, so sys.modules does not say)."""
    for c in cls.__mro__:
        names = vars(sys.modules[c.__module__]).values() if c.__module__ in sys.modules else ()
        for value in names:
            module = getattr(value, "__module__", None) if not inspect.ismodule(value) else None
            name = value.__name__ if inspect.ismodule(value) else module or ""
            if name.partition(".")[0] in FRAMEWORKS:
                return True
    return False


def _device_scope() -> contextlib.AbstractContextManager[Any]:
    if "tensorflow" not in sys.modules:
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.device("/CPU:0")


def _profiled(instance: Any, x: np.ndarray, y: np.ndarray, bs: int, steps: int) -> dict[str, Any]:
    """One call of `train_epoch` under TensorFlow's profiler, with a trace event around it
    that gives the window in the profiler's clock."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="mlpbench-anatomy-") as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            with tf.profiler.experimental.Trace(anatomy.WINDOW):
                np.asarray(instance.train_epoch(x, y, bs))  # losses on the host: a full sync
        finally:
            tf.profiler.experimental.stop()
        trace = anatomy.trace_of(anatomy.read_xspace(logdir))
    result = anatomy.parts_of(trace, steps)
    top = sorted(trace.ops.items(), key=lambda kv: -kv[1])[:12]
    result["method"] = "tensorflow profiler trace: op and XLA kernel intervals, union by part"
    result["top_ops"] = {k: v / steps for k, v in top}
    return result


def _cprofiled(
    instance: Any, spec: ModelSpec, x: np.ndarray, y: np.ndarray, bs: int, steps: int
) -> dict[str, Any]:
    """One call of `train_epoch` under cProfile: the math is the cumulative time of the
    functions `train_epoch` calls among the variant's own (its class and its bases'), the update
    that of its optimizer function (UPDATE_FUNCTIONS); then the step's GEMMs timed alone."""
    files = {inspect.getsourcefile(c) for c in type(instance).__mro__ if c.__module__ != "builtins"}
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    np.asarray(instance.train_epoch(x, y, bs))
    profile.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    math = update = 0.0
    for (file, _, name), (_, _, _, cumulative, callers) in stats.items():
        if file not in files:
            continue
        if any(caller[2] == "train_epoch" and caller[0] in files for caller in callers):
            math += cumulative
        if UPDATE_FUNCTIONS.match(name):
            # once, from outside: a subclass' `apply` that calls its base's is one update
            update += sum(
                timing[3]
                for caller, timing in callers.items()
                if not (caller[0] in files and UPDATE_FUNCTIONS.match(caller[2]))
            )
    gemm = gemm_seconds(spec, bs) * steps
    result = anatomy.numpy_parts(wall, steps, math, update, gemm)
    result["method"] = (
        "cProfile of the variant's own functions (math, update); GEMMs: the step's matrix "
        "products timed alone in the same process"
    )
    return result


def gemm_seconds(spec: ModelSpec, batch_size: int, repeats: int = 21) -> float:
    """The least time of one step's matrix products in NumPy, each with the operand layouts a
    training step has: the forward's row-major inputs, the weight gradient's transposed
    activations (a.T @ dz) and the input gradient's transposed kernel (dz @ W.T)."""
    rng = np.random.default_rng(0)
    dtype = np.dtype(spec.dtype)
    operands = []
    for role, m, k, n in gemm_shapes(spec, batch_size):
        if role == "forward":
            a, b = rng.random((m, k)), rng.random((k, n))
        elif role == "weight_grad":
            a, b = rng.random((k, m)).T, rng.random((k, n))
        else:
            a, b = rng.random((m, k)), rng.random((n, k)).T
        operands.append((a.astype(dtype), b.astype(dtype)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a, b in operands:
            a @ b
        times.append(time.perf_counter() - t0)
    # the least time: OpenBLAS' threads slow down many-fold when another process takes a core,
    # and the GEMMs are a floor inside a step measured once; the step's own slowdown under
    # load then shows in its other parts, never as GEMM time it did not need
    return min(times[1:])  # the first warms the caches and threads


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One anatomy.csv row per part (harness/results/storage.py ANATOMY_COLUMNS)."""
    return [
        {
            "variant": result["variant"],
            "batch_size": result["batch_size"],
            "part": part,
            "seconds_per_step": result["parts"][part],
            "step_seconds": result["step_seconds"],
            "coverage": result["coverage"],
            "unprofiled_step_seconds": result.get("unprofiled_step_seconds"),
            "steps": result["steps"],
            "method": result["method"],
        }
        for part in anatomy.PARTS
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.run.anatomy",
        description="One variant's steady step, part by part; prints JSON on stdout.",
    )
    parser.add_argument("--variant", required=True, help="a registry name or module:Class")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--hidden", default="64,32", help="comma-separated widths")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--optimizer", default=None, help="as optimizer_to_dict, in JSON")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="0: a whole epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", choices=list(variants.TASKS), default="mlp")
    parser.add_argument("--spec-options", default="{}", help="the task's spec options, as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # stdout carries only JSON
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # the floor is the CPU's

    from harness.datasets import load

    optimizer = optimizer_from_dict(json.loads(args.optimizer)) if args.optimizer else Adam()
    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    data = load(args.dataset, args.data_dir)
    options = json.loads(args.spec_options)
    task = make_task(data, hidden, 2, args.seed, args.dtype, args.task, **options)
    try:
        result = measure(args.variant, task, args.batch_size, optimizer, args.steps or None)
    except (AnatomyError, variants.VariantLoadError) as exc:
        print(f"anatomy: {exc}", file=sys.stderr)
        return 2
    result["optimizer"] = optimizer_to_dict(optimizer)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run_all(
    names: list[str],
    batch_sizes: list[int],
    argv: list[str],
    out: Any,
    note: Any = print,
    timeout: float = 900,
) -> int:
    """`mlpbench anatomy`: each (variant, batch size) in a process of its own, one after another,
    its rows added to OUT/anatomy.csv as it ends. `argv` holds the options every process shares
    (data, sizes, steps). Returns 0, or 1 if any breakdown failed."""
    import subprocess
    from pathlib import Path

    import pandas as pd

    from harness.results import storage

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames, failed = [], 0
    for name in names:
        for batch in batch_sizes:
            cmd = [sys.executable, "-m", "harness.run.anatomy", "--variant", name]
            cmd += ["--batch-size", str(batch), *argv]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                failed += 1
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                note(f"{name} batch {batch}: failed: {last}")
                continue
            result = json.loads(done.stdout)
            parts = ", ".join(f"{p} {result['parts'][p] * 1e3:.3f}" for p in anatomy.PARTS)
            note(
                f"{name} batch {batch}: {result['step_seconds'] * 1e3:.3f} ms per step = {parts} "
                f"(ms; coverage {result['coverage']:.2f})"
            )
            frames.append(pd.DataFrame(rows(result)))
            storage.write_anatomy(out, pd.concat(frames, ignore_index=True))
    return 1 if failed else 0
