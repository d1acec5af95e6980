"""Hostile input, third round: gates that must not pass on no data, folders that cannot be
read or written, names and values a new user types. Each case once failed; each must now end
in one line saying what is wrong and how to fix it (exit 2), or in the gate's honest verdict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from .test_bench_gate import assert_one_line_error as assert_gate_error
from .test_cli import ROOT, mlpbench

BASELINE = ROOT / "tests" / "benchmarks" / "baseline" / "short.json"


# -- bench-compare: a benchmark with no valid timings is bad input, not "same" ----------------


def _bench_file(tmp_path: Path, name: str, change) -> Path:
    data = json.loads(BASELINE.read_text())
    change(data["benchmarks"][0])
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


NO_TIMINGS = {
    "empty data": lambda b: b["stats"].__setitem__("data", []),
    "all NaN": lambda b: b["stats"].__setitem__("data", [math.nan] * 20),
    "stats null": lambda b: b.__setitem__("stats", None),
    "text timings": lambda b: b["stats"].__setitem__("data", ["a", "b"]),
    "negative timings": lambda b: b["stats"].__setitem__("data", [-t for t in b["stats"]["data"]]),
    "base_seconds empty": lambda b: b["extra_info"].__setitem__("base_seconds", []),
}


@pytest.mark.parametrize("damage", list(NO_TIMINGS))
def test_bench_compare_refuses_a_benchmark_with_no_valid_timings(damage, tmp_path):
    """Once judged "same" (or "faster", or a ValueError traceback): a gate passed on no data."""
    new = _bench_file(tmp_path, "new.json", NO_TIMINGS[damage])
    name = json.loads(new.read_text())["benchmarks"][0]["name"]
    files = [str(new)] if damage.startswith("base_seconds") else [str(BASELINE), str(new)]
    result = mlpbench("bench-compare", *files)
    assert_gate_error(result, f"{new}: benchmark {name}")
    assert "no valid timings" in result.stderr
