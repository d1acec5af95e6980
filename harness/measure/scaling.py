"""Data-parallel scaling: timing an all-reduce, and the model fitted to the measurements.

Each rank of a loopback cluster (harness/run/scaling.py starts and runs them) trains the
`tf2_multiworker` variant on synthetic data at one global batch and times its steps, then times
all-reduces alone, at the size of the model's gradients and at a sweep of sizes. The chief
reports both. From every (workers, batch) measurement the model

    step(N, B) = compute(B) / N + allreduce(bytes, N)
    allreduce(bytes, N) = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency   (ring)

is fitted: compute(B) is the one-worker step (no network), bandwidth and latency come from a
least-squares fit of the all-reduce sweep of every N > 1. The same model then projects the step
time of a cluster on a stated network (`NETWORKS`), assuming each worker computes as fast as
this machine's one process.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

# Projected networks: (name, bandwidth in bit/s, one-way latency per message in seconds).
NETWORKS = (
    ("10 Gbit/s Ethernet, 50 us", 10e9, 50e-6),
    ("100 Gbit/s RDMA, 10 us", 100e9, 10e-6),
)
PROJECTED_WORKERS = (1, 2, 4, 8, 16, 32)
# All-reduce sizes of the sweep that fits bandwidth and latency: from latency- to bandwidth-bound.
SWEEP_BYTES = (4_096, 65_536, 1_048_576, 4_194_304)


def ring_allreduce_seconds(nbytes: float, workers: int, bandwidth: float, latency: float) -> float:
    """A ring all-reduce: reduce-scatter then all-gather, 2 (N - 1) messages of bytes / N each;
    `bandwidth` in bytes/s."""
    if workers <= 1:
        return 0.0
    return 2 * (workers - 1) / workers * nbytes / bandwidth + 2 * (workers - 1) * latency


def fit_network(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares of t = latency * 2(N-1) + (1/bandwidth) * 2(N-1)/N * bytes over the
    all-reduce samples of N > 1 (medians per (N, bytes)); bandwidth in bytes/s."""
    rows = [s for s in samples if s["workers"] > 1]
    if len(rows) < 2:
        return {"latency_seconds": float("nan"), "bandwidth_bytes_per_second": float("nan")}
    a = np.array([[2 * (r["workers"] - 1), 2 * (r["workers"] - 1) / r["workers"] * r["bytes"]]
                  for r in rows])  # fmt: skip
    t = np.array([statistics.median(r["seconds"]) for r in rows])
    # each row weighted by 1/t: relative errors, so that the small sizes count as much as the large
    (latency, inverse_bandwidth), *_ = np.linalg.lstsq(a / t[:, None], t / t, rcond=None)
    return {
        "latency_seconds": float(latency),
        "bandwidth_bytes_per_second": float(1 / inverse_bandwidth) if inverse_bandwidth > 0
        else float("inf"),
    }  # fmt: skip


def fit(steps: list[dict[str, Any]], allreduce: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's parameters and its prediction beside each measured step time."""
    network = fit_network(allreduce)
    compute = {
        str(s["batch"]): statistics.median(s["step_seconds"]) for s in steps if s["workers"] == 1
    }
    checks = []
    for s in steps:
        if str(s["batch"]) not in compute:
            continue
        predicted = compute[str(s["batch"])] / s["workers"] + ring_allreduce_seconds(
            s["gradient_bytes"],
            s["workers"],
            network["bandwidth_bytes_per_second"],
            network["latency_seconds"],
        )
        checks.append(
            {
                "workers": s["workers"],
                "batch": s["batch"],
                "measured_step_seconds": statistics.median(s["step_seconds"]),
                "predicted_step_seconds": predicted,
            }
        )
    return {"compute_seconds": compute, **network, "checks": checks}


def project(model: dict[str, Any], gradient_bytes: int) -> list[dict[str, Any]]:
    """Step time, throughput and speed-up on each stated network, from the fitted compute."""
    rows = []
    for name, bits_per_second, latency in NETWORKS:
        for batch, compute in model["compute_seconds"].items():
            one = compute
            for n in PROJECTED_WORKERS:
                step = compute / n + ring_allreduce_seconds(
                    gradient_bytes, n, bits_per_second / 8, latency
                )
                rows.append(
                    {
                        "network": name,
                        "bandwidth_bits_per_second": bits_per_second,
                        "latency_seconds": latency,
                        "batch": int(batch),
                        "workers": n,
                        "step_seconds": step,
                        "samples_per_second": int(batch) / step,
                        "speedup": one / step,
                    }
                )
    return rows


# -- inside one rank ----------------------------------------------------------------------------


def time_allreduce(strategy: Any, nbytes: int, repeats: int) -> list[float]:
    import tensorflow as tf

    value = tf.ones((max(1, nbytes // 4),), tf.float32)

    @tf.function
    def allreduce() -> Any:
        def replica() -> Any:
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)

        return strategy.run(replica)

    for _ in range(3):  # trace, connect, warm the buffers
        allreduce()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = allreduce()
        strategy.experimental_local_results(out)[0].numpy()  # wait for the result
        seconds.append(time.perf_counter() - t0)
    return seconds
