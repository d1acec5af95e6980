"""Roofline fraction of every variant, measured interleaved with the GEMM peak.

    python tests/benchmarks/roofline_table.py --batch-sizes 32,128,512 --json out.json

The pytest-benchmark suite times one variant after another, minutes apart, against a
calibration taken once; on a shared machine the load changes in between. Here every round
times every variant once and the two GEMM-only chains once, in a rotating order, so that each
round's fraction (variant samples/s over the faster GEMM chain's samples/s in the same round;
the FLOPs per sample cancel) compares measurements taken seconds apart. The report is the
median over rounds with its quartiles, the fraction against the median peak, and the best
round over the best peak round (what each reaches when the load lets it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import variants
from harness.measure.calibrate import gemm_step, thread_settings
from harness.measure.roofline import flops_per_sample
from harness.run import cluster
from harness.task import glorot_uniform
from variants.base import SGD, Adam, ModelSpec

GEMM = ("gemm[numpy]", "gemm[tensorflow]")


def timed(run: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def measure_batch(
    spec: ModelSpec, names: list[str], batch_size: int, samples: int, rounds: int, optimizer: Any
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    steps = max(1, samples // batch_size)
    n = steps * batch_size
    x = rng.random((n, spec.input_size), dtype=np.float32)
    y = rng.integers(0, spec.num_classes, size=n, dtype=np.int64)

    runs: dict[str, Callable[[], object]] = {}
    for name in names:
        variant = variants.load(name)()
        variant.build(spec, optimizer, glorot_uniform(spec, np.random.default_rng(0)))
        runs[name] = lambda v=variant: v.train_epoch(x, y, batch_size)
    for label, backend in zip(GEMM, ("numpy", "tensorflow"), strict=True):
        step = gemm_step(backend, spec, batch_size)
        runs[label] = lambda s=step: [s() for _ in range(steps)]
    for run in runs.values():  # warm-up: tracing, compilation, thread pools, optimizer slots
        run()
        run()

    sps: dict[str, list[float]] = {label: [] for label in runs}
    order = list(runs)
    for r in range(rounds):
        shift = r % len(order)  # rotate, so that no entry always follows the same one
        for label in order[shift:] + order[:shift]:
            sps[label].append(n / timed(runs[label]))

    peak = [max(a, b) for a, b in zip(sps[GEMM[0]], sps[GEMM[1]], strict=True)]
    peak_median = statistics.median(peak)
    fps = flops_per_sample(spec)
    rows = {}
    for label, values in sps.items():
        fractions = [v / p for v, p in zip(values, peak, strict=True)]
        q1, med, q3 = np.percentile(fractions, [25, 50, 75])
        rows[label] = {
            "samples_per_second_median": statistics.median(values),
            "gflops_median": statistics.median(values) * fps / 1e9,
            "fraction_median": float(med),
            "fraction_q1": float(q1),
            "fraction_q3": float(q3),
            "fraction_of_median_peak": statistics.median(values) / peak_median,
            # Best round over best round: what each reaches when the machine lets it.
            "fraction_best": max(values) / max(peak),
            "samples_per_second": values,
        }
    return {
        "batch_size": batch_size,
        "steps_per_round": steps,
        "peak_gflops_median": peak_median * fps / 1e9,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=784)
    parser.add_argument("--hidden", default="512,256")
    parser.add_argument("--batch-sizes", default="128")
    parser.add_argument("--samples-per-round", type=int, default=2560)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    # in one process: distributed variants start TensorFlow their own way
    in_process = [n for n in variants.REGISTRY if cluster.layout(variants.REGISTRY[n]) == "single"]
    parser.add_argument("--variants", default=",".join(in_process))
    parser.add_argument("--json", help="write every sample here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    spec = ModelSpec(args.input_size, tuple(int(h) for h in args.hidden.split(",")), 10)
    optimizer = Adam() if args.optimizer == "adam" else SGD()
    names = [n for n in args.variants.split(",") if n]
    results = []
    print(f"{'-'.join(map(str, spec.layer_sizes))}, {args.optimizer}, {args.rounds} rounds")
    print(f"{'variant':<22} {'batch':>5} {'samples/s':>10} {'GFLOP/s':>8} {'fraction':>8} "
          f"{'q1..q3':>12} {'vs median peak':>14} {'best/best':>9}")  # fmt: skip
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        result = measure_batch(
            spec, names, batch_size, args.samples_per_round, args.rounds, optimizer
        )
        results.append(result)
        ranked = sorted(result["rows"].items(), key=lambda kv: -kv[1]["fraction_median"])
        for label, row in ranked:
            print(
                f"{label:<22} {batch_size:>5} {row['samples_per_second_median']:>10.0f} "
                f"{row['gflops_median']:>8.1f} {row['fraction_median']:>8.3f} "
                f"{row['fraction_q1']:>5.2f}..{row['fraction_q3']:<5.2f} "
                f"{row['fraction_of_median_peak']:>14.3f} {row['fraction_best']:>9.3f}",
                flush=True,
            )
        print(
            f"{'(peak, median)':<22} {batch_size:>5} {'':>10} {result['peak_gflops_median']:>8.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "layer_sizes": list(spec.layer_sizes),
                    "optimizer": repr(optimizer),
                    "flops_per_sample": flops_per_sample(spec),
                    "threads": thread_settings(),
                    "batches": results,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    sys.exit(main())
