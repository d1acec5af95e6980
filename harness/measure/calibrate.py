"""The roofline's calibration: the machine's GEMM throughput at the task's layer shapes, timed
as each framework runs one training step's matrix products best (NumPy, TensorFlow, XLA), and
its memory bandwidth, STREAM-style (timed in the NumPy part).

    python -m harness.measure.calibrate --input-size 784 --hidden 512,256 --batch-size 128 \
        [--dtype float64] [--optimizer adam] [--backends numpy]

prints the calibration as JSON on stdout. The runner runs it once per backend, each in a
process of its own, and merges the parts with `combine`; the FLOP and byte models the result is
read against (`flops_per_sample`, `step_bytes`, `gemm_fraction`, `floor_fraction`) are
harness/measure/roofline.py.
The products are in the spec's dtype, as the suite's variants train (float32 by default), and
the result says which (`dtype`): a float64 roofline is not comparable with a float32 one.

TensorFlow is imported only when a TensorFlow backend is timed, so the runner can import this
module for `BACKENDS` and `combine` without loading it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure.roofline import OPTIMIZER_ARRAYS, flops_per_sample, gemm_shapes, step_bytes
from variants.base import DTYPES, SPECS, ModelSpec

# Each framework as it runs the chain best: NumPy into preallocated outputs, TensorFlow traced
# into one graph, and that graph compiled by XLA. The roofline is the best of them.
BACKENDS = ("numpy", "tensorflow", "xla")

# Thread settings that change GEMM throughput; recorded with every calibration.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
)


def gemm_operands(spec: ModelSpec, batch_size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A batch in [0, 1) and Glorot-scaled kernels, in `spec.dtype`, so that values stay near 1
    through the chain (no overflow, no denormals to slow the products down)."""
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, spec.input_size), dtype=np.float32).astype(spec.dtype)
    kernels = []
    for fan_in, fan_out in pairwise(spec.layer_sizes):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        kernels.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(spec.dtype))
    return x, kernels


def numpy_gemm_step(x: np.ndarray, kernels: list[np.ndarray]) -> Callable[[], object]:
    """The step's GEMMs as one dependent chain, as the NumPy variant does them: forward, then
    backward using the logits as the output gradient. Outputs are preallocated so that only
    the products are timed; transposes are views, which BLAS takes as flags, not copies."""
    batch = x.shape[0]
    zs = [np.empty((batch, w.shape[1]), x.dtype) for w in kernels]
    dws = [np.empty_like(w) for w in kernels]
    das = [np.empty((batch, w.shape[0]), x.dtype) for w in kernels]

    def step() -> object:
        a = x
        for w, z in zip(kernels, zs, strict=True):
            np.matmul(a, w, out=z)
            a = z
        dz = zs[-1]
        for index in range(len(kernels) - 1, -1, -1):
            inputs = zs[index - 1] if index > 0 else x
            np.matmul(inputs.T, dz, out=dws[index])
            if index > 0:
                np.matmul(dz, kernels[index].T, out=das[index])
                dz = das[index]
        return dws

    return step


CHAINS_PER_CALL = 8  # chains per TensorFlow call: one host fetch per 8 steps' GEMMs


def tensorflow_gemm_step(
    x: np.ndarray, kernels: list[np.ndarray], jit_compile: bool = False
) -> tuple[Callable[[], object], str]:
    """The same chain as TensorFlow runs it best: traced into one graph (with `jit_compile`,
    compiled by XLA) that runs CHAINS_PER_CALL chains in a `tf.range` loop and returns once, so
    no call waits on a host fetch per chain. The transposes are MatMul's flags, as TF's own
    MatMul gradient does. Each chain reads its own batch (`xs[i]`): a loop whose body depends
    on nothing that changes could be hoisted out of it by the compiler. The operands are
    arguments, not constants, so nothing is folded at trace time; the weight gradients are
    loop-carried and returned, so no product is dead code. A call ends with a fetch of one
    gradient, so it is timed to the end of its work."""
    import tensorflow as tf

    def chain(x: tf.Tensor, kernels: list[tf.Tensor]) -> list[tf.Tensor]:
        zs = []
        a = x
        for w in kernels:
            a = tf.matmul(a, w)
            zs.append(a)
        dz = zs[-1]
        dws: list[tf.Tensor] = [None] * len(kernels)  # type: ignore[list-item]
        for index in range(len(kernels) - 1, -1, -1):
            inputs = zs[index - 1] if index > 0 else x
            dws[index] = tf.matmul(inputs, dz, transpose_a=True)
            if index > 0:
                dz = tf.matmul(dz, kernels[index], transpose_b=True)
        return dws

    @tf.function(jit_compile=jit_compile)
    def chains(xs: tf.Tensor, kernels: list[tf.Tensor]) -> list[tf.Tensor]:
        dws = [tf.zeros_like(w) for w in kernels]
        for i in tf.range(tf.shape(xs)[0]):
            dws = chain(xs[i], kernels)
        return dws

    xs = tf.constant(np.stack([np.roll(x, i, axis=0) for i in range(CHAINS_PER_CALL)]))
    kernels_t = [tf.constant(w) for w in kernels]

    def step() -> object:
        return chains(xs, kernels_t)[0].numpy()

    device = chains(xs, kernels_t)[0].device
    return step, device


def _warm_up(step: Callable[[], object], seconds: float, min_calls: int = 3) -> float:
    """Run until warm (tracing, thread pools, caches) and return the fastest call's seconds.
    The fastest, not the median: on a shared machine a busy moment during warm-up would
    otherwise shrink every later sample to a call or two."""
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


# Both arrays together 4x the last-level cache, so that no pass is served from it (STREAM asks
# 4x per array; half that here because first touching the pages is the slow part: 128 MiB took
# 0.56 s to fault in on this 2-core VM, and the calibration runs in every suite). The bounds
# keep the measurement short and its memory modest where the cache size is unknown or huge.
CACHE_MULTIPLE = 2
MIN_ARRAY_BYTES = 32 << 20
MAX_ARRAY_BYTES = 256 << 20
BANDWIDTH_REPEATS = 8


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache Linux reports for CPU 0 (sysfs), in bytes; None if unknown."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def memory_bandwidth(
    dtype: str = "float32",
    array_bytes: int | None = None,
    repeats: int = BANDWIDTH_REPEATS,
    threads: int | None = None,
) -> dict[str, Any]:
    """The machine's memory bandwidth as STREAM's Copy measures it: `b[:] = a` over arrays of
    `dtype` much larger than the last-level cache, split across one thread per usable CPU (NumPy
    releases the GIL while it copies, and a framework's elementwise ops use every core too).
    Counted as STREAM counts it, bytes read plus bytes written (2 x the array per pass), the
    convention `roofline.step_bytes` counts in; the result is the best of `repeats` passes
    (STREAM's rule: the best is the machine, a slower pass is interference)."""
    cache = last_level_cache_bytes()
    if array_bytes is None:
        wanted = CACHE_MULTIPLE * cache if cache else MIN_ARRAY_BYTES
        array_bytes = min(max(wanted, MIN_ARRAY_BYTES), MAX_ARRAY_BYTES)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    n = array_bytes // np.dtype(dtype).itemsize
    source, target = np.empty(n, dtype), np.empty(n, dtype)
    bounds = np.linspace(0, n, threads + 1).astype(np.int64)
    chunks = [slice(int(a), int(b)) for a, b in pairwise(bounds)]

    def touch(chunk: slice) -> None:  # each thread faults in its own pages, as it will copy them
        source[chunk] = 1
        target[chunk] = 0

    def copy(chunk: slice) -> None:
        np.copyto(target[chunk], source[chunk])

    samples = []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(touch, chunks))  # untimed: page faults are not bandwidth
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(copy, chunks))
            samples.append(2 * source.nbytes / (time.perf_counter() - t0) / 1e9)
    return {
        "bandwidth_gbs": max(samples),
        "bandwidth": {
            "method": "copy",
            "dtype": dtype,
            "array_bytes": int(source.nbytes),
            "last_level_cache_bytes": cache,
            "threads": threads,
            "median_gbs": statistics.median(samples),
            "samples_gbs": samples,
        },
    }


def thread_settings() -> dict[str, Any]:
    """The thread counts NumPy's BLAS and TensorFlow use here (defaults are left untouched)."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "env": {k: os.environ[k] for k in THREAD_ENV_VARS if k in os.environ},
    }
    try:
        from threadpoolctl import threadpool_info

        # Every BLAS loaded in the process (TensorFlow's dependencies may bring a second
        # OpenBLAS); the file path says which one is NumPy's.
        keys = ("filepath", "internal_api", "num_threads", "version", "architecture")
        info["blas"] = sorted(
            ({k: pool.get(k) for k in keys} for pool in threadpool_info()
             if pool.get("user_api") == "blas"),
            key=lambda pool: str(pool["filepath"]),
        )  # fmt: skip
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, say so
        info["blas"] = "unknown (threadpoolctl not installed)"
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        # 0 means "TensorFlow's default", which is one thread per core for intra-op work.
        info["tensorflow_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tensorflow_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    return info


def gemm_step(backend: str, spec: ModelSpec, batch_size: int) -> Callable[[], object]:
    """One training step's GEMMs at `spec`'s sizes as a callable, with `backend` "numpy" or
    "tensorflow" (what `calibrate` times; benchmarks time it beside the variants)."""
    x, kernels = gemm_operands(spec, batch_size)
    if backend == "numpy":
        return numpy_gemm_step(x, kernels)
    if backend in ("tensorflow", "xla"):
        return tensorflow_gemm_step(x, kernels, jit_compile=backend == "xla")[0]
    raise ValueError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")


def calibrate(
    spec: ModelSpec,
    batch_size: int,
    min_seconds: float = 2.0,
    repeats: int = 10,
    warmup_seconds: float = 0.3,
    max_seconds: float | None = None,
    backends: tuple[str, ...] = BACKENDS,
    optimizer: str | None = None,
    task_spec: ModelSpec | None = None,
) -> dict[str, Any]:
    """Measure the GEMM throughput of one training step's products at `spec`'s layer sizes,
    and, with the "numpy" backend, the memory bandwidth (`memory_bandwidth`, before the GEMMs:
    its arrays are freed before they run). With `optimizer` (a kind of OPTIMIZER_ARRAYS), the
    result also carries the step's byte model (`roofline.step_bytes`) the bandwidth is read
    against.

    Each backend is warmed up, then timed in `repeats` samples of about
    `min_seconds / repeats` seconds each; the backends alternate sample by sample (ABAB..., the
    order flipped every repeat) so that both see the same load on a shared machine. Every
    sample is kept, in GFLOP/s; the reported throughput is the median, and the best sample is
    reported beside it. A busy machine can make samples far longer than planned: after
    `max_seconds` of timing (default 10 x min_seconds) no new repeat starts, once every backend
    has at least 3 samples.
    """
    budget = 10 * min_seconds if max_seconds is None else max_seconds
    memory = memory_bandwidth(spec.dtype) if "numpy" in backends else {}
    x, kernels = gemm_operands(spec, batch_size)
    steps: dict[str, Callable[[], object]] = {}
    device = {"numpy": "cpu"}
    chains = {"numpy": 1}
    for backend in backends:
        if backend == "numpy":
            steps["numpy"] = numpy_gemm_step(x, kernels)
        elif backend in ("tensorflow", "xla"):
            steps[backend], device[backend] = tensorflow_gemm_step(
                x, kernels, jit_compile=backend == "xla"
            )
            chains[backend] = CHAINS_PER_CALL
        else:
            raise ValueError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
    inner: dict[str, int] = {}
    for name, step in steps.items():
        seconds = _warm_up(step, warmup_seconds)
        inner[name] = max(1, round(min_seconds / repeats / seconds))

    samples: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    timing_start = time.perf_counter()
    for r in range(repeats):
        if r >= 3 and time.perf_counter() - timing_start > budget:
            break
        for name in order if r % 2 == 0 else order[::-1]:
            step, n = steps[name], inner[name]
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            elapsed = time.perf_counter() - t0
            step_flops = flops_per_sample(spec) * batch_size * chains[name]
            samples[name].append(step_flops * n / elapsed / 1e9)

    medians = {name: statistics.median(s) for name, s in samples.items()}
    return {
        **{f"{b}_gflops": medians.get(b) for b in BACKENDS},
        "peak_gflops": max(medians.values()),
        "peak_backend": max(medians, key=medians.__getitem__),
        "flops_per_sample": flops_per_sample(spec),
        **{f"{b}_gflops_best": max(samples[b]) if b in samples else None for b in BACKENDS},
        "samples": samples,
        "calls_per_sample": inner,
        "batch_size": batch_size,
        "dtype": spec.dtype,
        "layer_sizes": list(spec.layer_sizes),
        "gemms": [list(s) for s in gemm_shapes(spec, batch_size)],
        "device": device,
        "threads": thread_settings(),
        **memory,
        # the byte model of the task's own step (`task_spec`, e.g. wide & deep), else the MLP's
        **(
            {"step_bytes": step_bytes(task_spec or spec, batch_size, optimizer)}
            if optimizer
            else {}
        ),
    }


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One calibration from backends measured in separate processes: each part's own values
    (None where it did not measure), dicts merged, the peak the largest median. Separate
    processes because TensorFlow's idle threads spin and starve NumPy's BLAS threads on a small
    machine (seen here: NumPy's GEMM at 0.3 GFLOP/s beside TensorFlow, 38 alone)."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                out[key] = {**out.get(key, {}), **value}
            elif value is not None or key not in out:
                out[key] = value
    best = max(parts, key=lambda p: p["peak_gflops"])
    out["peak_gflops"], out["peak_backend"] = best["peak_gflops"], best["peak_backend"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m harness.measure.calibrate",
        description="Measure GEMM throughput at the task's layer sizes; print JSON on stdout.",
    )
    parser.add_argument("--input-size", type=int, required=True)
    parser.add_argument("--hidden", required=True, help="comma-separated widths, e.g. 512,256")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="default: float32")
    parser.add_argument(
        "--optimizer",
        choices=tuple(OPTIMIZER_ARRAYS),
        default=None,
        help="the suite's optimizer: adds the step's byte model (harness.measure.roofline)",
    )
    parser.add_argument(
        "--task", choices=tuple(SPECS), default="mlp", help="whose step bytes; default: mlp"
    )
    parser.add_argument("--spec-options", default="{}", help="the task's spec options, as JSON")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds per backend")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help=f"comma-separated: {', '.join(BACKENDS)}"
    )
    args = parser.parse_args(argv)
    # TensorFlow's C++ start-up lines go to stderr; keep them short. stdout carries only JSON.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    spec = ModelSpec(
        input_size=args.input_size,
        hidden=tuple(int(h) for h in args.hidden.split(",") if h),
        num_classes=args.num_classes,
        dtype=args.dtype,
    )
    result = calibrate(
        spec,
        args.batch_size,
        min_seconds=args.min_seconds,
        repeats=args.repeats,
        backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()),
        optimizer=args.optimizer,
        task_spec=SPECS[args.task](
            spec.input_size,
            spec.hidden,
            spec.num_classes,
            spec.dtype,
            **json.loads(args.spec_options),
        ),
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
