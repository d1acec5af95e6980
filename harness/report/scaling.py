"""The scaling report: a figure and a text, from a folder's `scaling.json` alone.

    python -m harness.report.scaling FOLDER      writes FOLDER/scaling.png and FOLDER/scaling.md

Nothing is re-measured or re-fitted: the measurements, the fitted model and the projections are
read as `python -m harness.run.scaling` stored them.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

SUPPORTED_SCHEMA = 1
NO_SPEEDUP = (
    "One machine cannot show a speed-up: its workers share its CPU cores, so N workers compute "
    "no faster than one, and every step adds an all-reduce over loopback gRPC. The loopback "
    "numbers measure the cost of distribution; the projection estimates its benefit on a real "
    "cluster."
)


class ScalingReportError(Exception):
    """A folder without a readable scaling.json."""


def load(folder: Path) -> dict[str, Any]:
    path = folder / "scaling.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ScalingReportError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    if data.get("schema_version") != SUPPORTED_SCHEMA:
        raise ScalingReportError(f"{path}: schema {data.get('schema_version')} is not supported")
    return data


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.2f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:.0f} kB"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def text(data: dict[str, Any]) -> str:
    model, machine = data["model"], data["machine"]
    lines = [
        "# Data-parallel scaling",
        "",
        f"{data['variant']} on {data['transport']}; {data['params']:,} parameters, "
        f"{data['gradient_bytes'] / 1e6:.2f} MB of gradients all-reduced per step. "
        f"Measured {data['created']} on {machine['usable_cpus']} usable CPU(s), load average "
        f"{machine['loadavg_before'][0]:.1f} before the first cluster.",
        "",
        f"**{NO_SPEEDUP}**",
        "",
        "## Measured on loopback",
        "",
        "| workers | global batch | step (median) | samples/s | model | all-reduce alone |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    allreduce = {
        a["workers"]: statistics.median(a["seconds"])
        for a in data["allreduce"]
        if a["bytes"] == data["gradient_bytes"]
    }
    predicted = {(c["workers"], c["batch"]): c["predicted_step_seconds"] for c in model["checks"]}
    for s in data["steps"]:
        step = statistics.median(s["step_seconds"])
        lines.append(
            f"| {s['workers']} | {s['batch']} | {_ms(step)} | {s['batch'] / step:,.0f} | "
            f"{_ms(predicted.get((s['workers'], s['batch']), float('nan')))} | "
            f"{_ms(allreduce.get(s['workers'], float('nan')))} |"
        )
    bandwidth = model["bandwidth_bytes_per_second"]
    lines += [
        "",
        "## Model",
        "",
        "`step(N, B) = compute(B) / N + 2 (N-1)/N * bytes / bandwidth + 2 (N-1) * latency` "
        "(ring all-reduce). compute(B) is the one-worker step; bandwidth and latency are a "
        "least-squares fit (relative errors) to all-reduces of "
        f"{', '.join(_size(b) for b in sorted({a['bytes'] for a in data['allreduce']}))} "
        "timed alone on every N > 1.",
        "",
        f"- loopback fit: bandwidth {bandwidth * 8 / 1e9:.2f} Gbit/s "
        f"({bandwidth / 1e6:.0f} MB/s), latency {model['latency_seconds'] * 1e6:.0f} us "
        "per message (gRPC and TensorFlow's collective executor, not the wire)",
        *(f"- compute({b}) = {_ms(c)}" for b, c in model["compute_seconds"].items()),
        "- where the model is below the measured step, the gap is what it leaves out: "
        "workers competing for the same cores, and each step's fixed cost in tf.distribute.",
        "",
        "## Projected",
        "",
        "Assumptions: each worker has a machine of its own as fast as this one's one process "
        "(compute(B) / N), gradients are all-reduced once per step by a ring, nothing overlaps "
        "communication with computation, and the network is:",
        "",
        *(
            f"- {n['name']}: {n['bandwidth_bits_per_second'] / 1e9:g} Gbit/s, "
            f"{n['latency_seconds'] * 1e6:g} us per message"
            for n in data["networks"]
        ),
        "",
        "| network | global batch | workers | step | samples/s | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {p['network']} | {p['batch']} | {p['workers']} | {_ms(p['step_seconds'])} | "
            f"{p['samples_per_second']:,.0f} | {p['speedup']:.2f}x |"
            for p in data["projection"]
        ),
        "",
    ]
    return "\n".join(lines)


def figure(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    batches = sorted({s["batch"] for s in data["steps"]})
    predicted = {(c["workers"], c["batch"]): c["predicted_step_seconds"]
                 for c in data["model"]["checks"]}  # fmt: skip
    for batch in batches:
        rows = sorted((s for s in data["steps"] if s["batch"] == batch), key=lambda s: s["workers"])
        workers = [s["workers"] for s in rows]
        measured = [batch / statistics.median(s["step_seconds"]) for s in rows]
        (line,) = left.plot(workers, measured, "o-", label=f"measured, batch {batch}")
        model = [batch / predicted[(w, batch)] for w in workers]
        left.plot(workers, model, "--", color=line.get_color(), label=f"model, batch {batch}")
    left.set(xlabel="workers (processes on one machine)", ylabel="samples/s", yscale="log",
             title="Loopback, one machine: no speed-up possible")  # fmt: skip
    left.set_xticks(sorted({s["workers"] for s in data["steps"]}))
    left.legend(fontsize=8)

    for net in data["networks"]:
        for batch in batches:
            rows = [p for p in data["projection"]
                    if p["network"] == net["name"] and p["batch"] == batch]  # fmt: skip
            right.plot([p["workers"] for p in rows], [p["speedup"] for p in rows], "o-",
                       label=f"{net['name']}, batch {batch}")  # fmt: skip
    top = max(p["workers"] for p in data["projection"])
    right.plot([1, top], [1, top], ":", color="grey", label="ideal")
    right.set(xlabel="workers (one machine each)", ylabel="speed-up over 1 worker",
              xscale="log", yscale="log", title="Projected from the fitted model")  # fmt: skip
    right.set_xticks([p for p in sorted({p["workers"] for p in data["projection"]})])
    right.set_xticklabels([str(p) for p in sorted({p["workers"] for p in data["projection"]})])
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(folder: Path) -> tuple[Path, Path]:
    data = load(folder)
    md, png = folder / "scaling.md", folder / "scaling.png"
    md.write_text(text(data))
    figure(data, png)
    return md, png


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.report.scaling FOLDER", file=sys.stderr)
        return 2
    try:
        md, png = write(Path(argv[0]))
    except ScalingReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(md.read_text())
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
