"""Run-to-run spread of repeated benchmark runs: the numbers the CI threshold is chosen from.

    python tests/benchmarks/spread.py .benchmarks/ci/short-*.json

For every benchmark and statistic (min, median), the worst regression between any two runs:
max over ordered pairs (a, b) of b / a - 1. A baseline is one run and CI is a later one, so
this is exactly what `--benchmark-compare-fail=median:X%` would have seen; the threshold must
stay above its maximum over all benchmarks, with margin.
"""

from __future__ import annotations

import json
import sys
from itertools import permutations
from pathlib import Path

STATS = ("min", "median")


def load(paths: list[Path]) -> dict[str, dict[str, list[float]]]:
    """{benchmark name: {stat: [value per run]}}"""
    table: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        for bench in json.loads(path.read_text())["benchmarks"]:
            row = table.setdefault(bench["name"], {s: [] for s in STATS})
            for stat in STATS:
                row[stat].append(bench["stats"][stat])
    return table


def worst_regression(values: list[float]) -> float:
    return max((b / a - 1 for a, b in permutations(values, 2)), default=0.0)


def main(argv: list[str]) -> None:
    paths = [Path(p) for p in argv]
    if len(paths) < 2:
        sys.exit("give at least two benchmark JSON files")
    table = load(paths)
    print(f"{len(paths)} runs; worst run-to-run regression per benchmark, in %")
    print(f"{'benchmark':<48} " + " ".join(f"{s:>8}" for s in STATS))
    worst = dict.fromkeys(STATS, 0.0)
    for name, row in sorted(table.items()):
        cells = []
        for stat in STATS:
            w = worst_regression(row[stat])
            worst[stat] = max(worst[stat], w)
            cells.append(f"{100 * w:>8.1f}")
        print(f"{name:<48} " + " ".join(cells))
    print(
        f"{'worst over all benchmarks':<48} " + " ".join(f"{100 * worst[s]:>8.1f}" for s in STATS)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
