"""Measure the CI gate itself: its false alarms on clean runs and the slowdowns it catches.

    python tests/benchmarks/gate_campaign.py [--clean 10] [--fractions 0.1,0.25,0.5]
        [--slow a+b+c,d+e]

Runs `bash .ci/bench` exactly as CI does (baseline commit and this tree interleaved in one
process, a second process when something is flagged), each run into a folder of its own
under OUT/ (default .benchmarks/campaign): `--clean` times with nothing injected, then, for
each fraction, once per group of `--slow` with that extra work injected into the group's
variants (MLPBENCH_BENCH_SLOWDOWN; `slowed` in tests/benchmarks/conftest.py).

Each benchmark is judged against the baseline's rounds interleaved with its own, never
against another benchmark, so the variants of a group are judged independently: a group is
several single-variant trials in one run. A slowed variant counts as caught when the gate
exits 1 naming it slower in both measurements. Prints a markdown row per run, then the
sensitivity table (each variant's NEW/BASE per fraction, both measurements) and the counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import variants  # noqa: E402
from harness.report import bench_compare  # noqa: E402
from harness.run import cluster  # noqa: E402

# the variants .ci/bench times: those that train in one process
VARIANTS = [n for n in variants.REGISTRY if cluster.layout(variants.REGISTRY[n]) == "single"]
SEPARATED = "bench: slower in both measurements: "


def name_of(benchmark: str) -> str:
    return benchmark.split("[", 1)[1].rsplit("-b", 1)[0]


def ci_bench(out: Path, slowdown: str = "") -> tuple[int, set[str], dict[str, list[float]], float]:
    """`bash .ci/bench` into `out`: exit status, variants named slower in both measurements,
    each variant's NEW/BASE per measurement, seconds."""
    out.mkdir(parents=True)
    env = {**os.environ, "MLPBENCH_BENCH_SLOWDOWN": slowdown, "MLPBENCH_BENCH_OUT": str(out)}
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            ["bash", ".ci/bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
        )
    except subprocess.TimeoutExpired:  # a row of the table, not the end of the campaign
        return -1, set(), {}, time.monotonic() - t0
    seconds = time.monotonic() - t0
    (out / "log.txt").write_text(done.stdout + done.stderr)
    caught = {
        name_of(word)
        for line in done.stderr.splitlines()
        if line.startswith(SEPARATED)
        for word in line[len(SEPARATED) :].split()
    }
    ratios: dict[str, list[float]] = {}
    for json_file in sorted(out.glob("short-*.json"), key=lambda p: "confirm" in p.name):
        for v in bench_compare.compare_interleaved(json_file):
            ratios.setdefault(name_of(v.name), []).append(v.change.ratio)
    return done.returncode, caught, ratios, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", type=int, default=10)
    parser.add_argument("--fractions", default="0.25")
    parser.add_argument(
        "--slow",
        default="+".join(VARIANTS),
        help="groups of variants slowed together, a+b+c,d+e (default: every variant in one run)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".benchmarks" / "campaign")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    print("| run | exit | slower in both | largest NEW/BASE | seconds |", flush=True)
    print("|---|---|---|---|---|", flush=True)
    false_alarms = 0
    for i in range(1, args.clean + 1):
        code, caught, ratios, seconds = ci_bench(args.out / f"{stamp}-clean{i}")
        false_alarms += code != 0
        worst = max(ratios.items(), key=lambda kv: max(kv[1]), default=("-", [0.0]))
        print(
            f"| clean {i} | {code} | {', '.join(sorted(caught)) or '-'} | "
            f"{worst[0]} {max(worst[1]):.3f} | {seconds:.0f} |",
            flush=True,
        )
    table: dict[tuple[str, float], tuple[bool, list[float]]] = {}
    fractions = [float(f) for f in args.fractions.split(",") if f]
    for fraction in fractions:
        for g, group in enumerate(filter(None, args.slow.split(","))):
            names = group.split("+")
            slowdown = ",".join(f"{n}:{fraction}" for n in names)
            out = args.out / f"{stamp}-slow{fraction:g}-{g}"
            code, caught, ratios, seconds = ci_bench(out, slowdown)
            unchanged = sorted(caught - set(names))
            for n in names:
                table[n, fraction] = (code == 1 and n in caught, ratios.get(n, []))
            print(
                f"| +{fraction:.0%}: {group} | {code} | {', '.join(sorted(caught)) or '-'}"
                f"{' (not slowed: ' + ', '.join(unchanged) + ')' if unchanged else ''} | "
                f"| {seconds:.0f} |",
                flush=True,
            )
    print("\n| variant | " + " | ".join(f"+{f:.0%}" for f in fractions) + " |")
    print("|---|" + "---|" * len(fractions))
    for n in dict.fromkeys(n for n, _ in table):
        cells = []
        for f in fractions:
            hit, ratios = table.get((n, f), (False, []))
            read = " / ".join(f"{r:.2f}" for r in ratios)
            cells.append(f"{'caught' if hit else 'missed'} ({read})")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print(f"\n{false_alarms} of {args.clean} clean runs failed the gate", flush=True)
    for f in fractions:
        trials = [hit for (n, frac), (hit, _) in table.items() if frac == f]
        print(f"+{f:.0%}: {sum(trials)} of {len(trials)} slowed variants caught", flush=True)


if __name__ == "__main__":
    main()
