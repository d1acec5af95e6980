"""Measures data-parallel scaling end to end and writes `scaling.json` into a folder:

    python -m harness.run.scaling --out DIR [--workers 1,2,4] [--batches 128,1024]

For each number of workers, a loopback cluster (harness/run/cluster.py) whose ranks time the
`tf2_multiworker` variant's steps at each global batch and all-reduces alone
(harness/measure/scaling.py); then the scaling model is fitted and projected. One cluster at a
time, so that no measurement shares the CPU with another. The frameworks are imported once, here,
and every rank is forked from this process (`--cold` starts each in a fresh interpreter instead).
The report is `python -m harness.report.scaling FOLDER`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure import scaling
from harness.run.cluster import Supervisor
from harness.run.worker import Events

SCHEMA_VERSION = 1
STARTUP_SECONDS = 120.0  # N TensorFlow imports at once on a small machine
DEADLINE_SECONDS = 600.0


def measure_cluster(
    workers: int, batch: int, logs: Path, argv: list[str], fork: bool = True
) -> dict[str, Any]:
    """One cluster of `workers` ranks at global batch `batch`: the chief's result. Forked ranks
    need the frameworks imported here first (harness/run/preload.py)."""
    sink = io.StringIO()

    def rank_args(event_fd: int) -> list[str]:
        return ["--event-fd", str(event_fd), "--batch", str(batch), *argv]

    def rank_command(event_fd: int) -> list[str]:
        return ["-m", "harness.run.scaling", "rank", *rank_args(event_fd)]

    supervisor = Supervisor(
        None,
        workers,
        str(logs / f"scaling-w{workers}-b{batch}"),
        DEADLINE_SECONDS,
        STARTUP_SECONDS,
        rank_command=rank_command,
        fork=fork,
        rank_main=lambda event_fd: rank_main(rank_args(event_fd)),
    )
    supervisor.run(Events(sink))
    final = [json.loads(line) for line in sink.getvalue().splitlines()][-1]
    if final["event"] != "done":
        raise RuntimeError(f"{workers} workers, batch {batch}: {final.get('error')}")
    return final


def run(
    out: Path, workers: list[int], batches: list[int], argv: list[str], fork: bool = True
) -> dict[str, Any]:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if fork:
        import harness.run.preload  # noqa: F401  (imports only: the ranks start TensorFlow's runtime)
    steps, allreduce = [], []
    for n in workers:
        for batch in batches:
            print(f"{n} worker(s), global batch {batch} ...", flush=True)
            r = measure_cluster(n, batch, logs, argv, fork)
            steps.append({k: r[k] for k in ("workers", "batch", "gradient_bytes", "step_seconds")})
            if batch == batches[0]:  # the all-reduce does not depend on the batch
                allreduce += [
                    {"workers": n, "bytes": int(b), "seconds": s}
                    for b, s in r["allreduce_seconds"].items()
                ]
            gradient_bytes, params = r["gradient_bytes"], r["params"]
    model = scaling.fit(steps, allreduce)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(
            [os.path.basename(sys.executable), "-m", "harness.run.scaling", *sys.argv[1:]]
        ),  # fmt: skip
        "machine": {
            "cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "loadavg_before": os.getloadavg(),
            "platform": platform.platform(),
        },
        "variant": "tf2_multiworker",
        "transport": "gRPC on 127.0.0.1, RING all-reduce (MultiWorkerMirroredStrategy)",
        "params": params,
        "gradient_bytes": gradient_bytes,
        "steps": steps,
        "allreduce": allreduce,
        "model": model,
        "networks": [
            {"name": name, "bandwidth_bits_per_second": bw, "latency_seconds": lat}
            for name, bw, lat in scaling.NETWORKS
        ],
        "projection": scaling.project(model, gradient_bytes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run.scaling", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", default="1,2,4", help="default: 1,2,4")
    parser.add_argument(
        "--batches", default="128,1024", help="global batch sizes; default: 128,1024"
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--cold", action="store_true", help="start every rank in a fresh interpreter"
    )
    args = parser.parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split(",")]
        batches = [int(b) for b in args.batches.split(",")]
        if min(workers) < 1 or min(batches) < 1 or 1 not in workers:
            raise ValueError
    except ValueError:
        print("--workers and --batches: positive integers, and --workers must include 1 "
              "(the compute the model divides)", file=sys.stderr)  # fmt: skip
        return 2
    if (args.out / "scaling.json").exists():
        print(f"{args.out}/scaling.json exists: choose another --out", file=sys.stderr)
        return 2
    rank_argv = ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    try:
        result = run(args.out, workers, batches, rank_argv, fork=not args.cold)
    except RuntimeError as exc:
        print(f"scaling: {exc} (logs in {args.out / 'logs'})", file=sys.stderr)
        return 1
    with tempfile.NamedTemporaryFile("w", dir=args.out, delete=False) as f:
        json.dump(result, f, indent=1)
    Path(f.name).replace(args.out / "scaling.json")
    print(f"wrote {args.out / 'scaling.json'}")
    return 0


def measure_rank(args: argparse.Namespace, events: Any) -> dict[str, Any]:
    """Runs in a rank: step times of the variant, then all-reduce times alone."""
    import variants
    from variants.base import SGD, ModelSpec

    spec = ModelSpec(args.input_size, tuple(args.hidden))
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in spec.weight_shapes]
    variant = variants.load("tf2_multiworker")()
    variant.build(spec, SGD(lr=0.01), weights)  # connects the cluster (TF_CONFIG)
    strategy = variant.strategy
    events.emit("start", workers=strategy.num_replicas_in_sync)
    n = args.batch * args.steps
    x = rng.standard_normal((n, spec.input_size)).astype(np.float32)
    y = rng.integers(0, spec.num_classes, n)
    variant.train_epoch(x[: args.batch * 3], y[: args.batch * 3], args.batch)  # warm-up
    step_seconds = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        variant.train_epoch(x, y, args.batch)
        step_seconds.append((time.perf_counter() - t0) / args.steps)
    gradient_bytes = spec.param_count * 4
    sweep = sorted({gradient_bytes, *scaling.SWEEP_BYTES})
    allreduce = {str(b): scaling.time_allreduce(strategy, b, args.allreduce_repeats) for b in sweep}
    return {
        "workers": strategy.num_replicas_in_sync,
        "batch": args.batch,
        "gradient_bytes": gradient_bytes,
        "params": spec.param_count,
        "step_seconds": step_seconds,
        "allreduce_seconds": allreduce,
    }


def rank_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run.scaling rank")
    parser.add_argument("--event-fd", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--allreduce-repeats", type=int, default=30)
    parser.add_argument("--input-size", type=int, default=784)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 256])
    args = parser.parse_args(argv)
    with os.fdopen(args.event_fd, "w") as stream:
        events = Events(stream)
        try:
            result = measure_rank(args, events)
        except Exception as exc:  # the supervisor records the reason, the log the traceback
            import traceback

            traceback.print_exc()
            events.emit("error", error=f"{type(exc).__name__}: {exc}")
            return 1
        events.emit("done", **result)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["rank"]:  # inside a rank that a cluster started
        sys.exit(rank_main(sys.argv[2:]))
    sys.exit(main())
