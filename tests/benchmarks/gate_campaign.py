"""Measure the CI gate itself: its false alarms on clean runs and the slowdowns it catches.

    python tests/benchmarks/gate_campaign.py --clean 10 --slowdowns 0.1,0.25,0.5
    python tests/benchmarks/gate_campaign.py --acceptance [--clean 10] [--fraction 0.25]

`--acceptance` runs `bash .ci/bench` itself, exactly as CI does (against the stored baseline,
with its confirmation run): `--clean` times clean, then once per variant with `--fraction`
of extra work injected into that variant alone; it prints each exit status and verdict line
and ends with the count of clean runs that failed and of slowed variants that passed.
`--slow a+b,c` slows a and b together in one run (each judged on its own: it counts as caught
only if the gate names it slower in both measurements), then c alone. Two of sixteen slowed
at once is, if anything, harder for the gate than one: their rounds drag the session's median
reference a little.

Runs the short benchmarks as `.ci/bench` does, into OUT/ (default .benchmarks/campaign):
one baseline, then `--clean` clean runs, then one run per slowdown with that extra work
injected into every variant at once (MLPBENCH_BENCH_SLOWDOWN=*:fraction; each variant's verdict
is independent, and all slowed at once is the harder case: the session's reference runs beside
slowed rounds). Judges each against the baseline with harness/report/bench_compare.py and
prints markdown tables for tests/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
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
CONFIRM = ("bench: slower in both", "bench: not confirmed")  # .ci/bench's second look
VERDICT = re.compile(r"^(none of \d+ benchmarks is slower|\d+ slower: .*)$")


def run(out: Path, slowdown: str = "") -> Path:
    env = {**os.environ, "MLPBENCH_BENCH_MODE": "short", "MLPBENCH_BENCH_SLOWDOWN": slowdown}
    cmd = [sys.executable, "-m", "pytest", "tests/benchmarks", "-k", "test_train_steps", "-q"]
    cmd += ["--benchmark-only", f"--benchmark-json={out}", "-p", "no:cacheprovider"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=900)
    return out


def ci_bench(slowdown: str = "") -> tuple[int, str, float]:
    """`bash .ci/bench` as CI runs it: its exit status, its last verdict line, seconds."""
    env = {**os.environ, "MLPBENCH_BENCH_SLOWDOWN": slowdown, "COLUMNS": "200"}
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            ["bash", ".ci/bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
        )
    except subprocess.TimeoutExpired:  # a row of the table, not the end of the campaign
        return -1, "timed out after 1800 s", time.monotonic() - t0
    lines = (done.stdout + "\n" + done.stderr).splitlines()
    verdicts = [ln for ln in lines if VERDICT.match(ln.strip()) or ln.startswith(CONFIRM)]
    return (
        done.returncode,
        (verdicts[-1] if verdicts else done.stderr[-300:]).strip(),
        (time.monotonic() - t0),
    )


def acceptance(clean: int, fraction: float, slowed: list[str]) -> None:
    print("| run | exit | verdict | seconds |\n|---|---|---|---|", flush=True)
    false_alarms = 0
    for i in range(1, clean + 1):
        code, line, seconds = ci_bench()
        false_alarms += code != 0
        print(f"| clean {i} | {code} | {line} | {seconds:.0f} |", flush=True)
    missed, count = [], 0
    for group in slowed:
        names = group.split("+")
        count += len(names)
        code, line, seconds = ci_bench(",".join(f"{n}:{fraction}" for n in names))
        confirmed = set(re.findall(r"\[([\w]+)-b\d+\]", line)) if code == 1 else set()
        missed += [n for n in names if n not in confirmed]
        print(f"| {group} +{fraction:.0%} | {code} | {line} | {seconds:.0f} |", flush=True)
    print(f"\n{false_alarms} of {clean} clean runs failed the gate; "
          f"{count - len(missed)} of {count} slowed variants failed it"
          + (f" (passed: {', '.join(missed)})" if missed else ""), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", type=int, default=10)
    parser.add_argument("--slowdowns", default="0.1,0.25,0.5")
    parser.add_argument("--acceptance", action="store_true", help="run .ci/bench itself")
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument(
        "--slow", default=",".join(VARIANTS), help="variants slowed one by one (a+b: together)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".benchmarks" / "campaign")
    args = parser.parse_args()
    if args.acceptance:
        acceptance(args.clean, args.fraction, [v for v in args.slow.split(",") if v])
        return
    args.out.mkdir(parents=True, exist_ok=True)
    base = run(args.out / "base.json")
    print("| clean run | slower (false alarms) | largest change |\n|---|---|---|", flush=True)
    alarms = 0
    for i in range(1, args.clean + 1):
        verdicts = bench_compare.compare(base, run(args.out / f"clean{i}.json"))
        slower = [v.name for v in verdicts if v.verdict == "slower"]
        alarms += bool(slower)
        worst = max(verdicts, key=lambda v: v.change.ratio)
        print(f"| {i} | {', '.join(slower) or 'none'} | {worst.name} {worst.change.ratio:.3f} |",
              flush=True)  # fmt: skip
    print(f"\n{alarms} of {args.clean} clean runs raised an alarm\n", flush=True)
    fractions = [float(f) for f in args.slowdowns.split(",")]
    tables = {f: bench_compare.compare(base, run(args.out / f"slow{f}.json", f"*:{f}"))
              for f in fractions}  # fmt: skip
    names = [v.name for v in tables[fractions[0]]]
    print("| benchmark | " + " | ".join(f"+{f:.0%}" for f in fractions) + " |")
    print("|---|" + "---|" * len(fractions))
    for i, name in enumerate(names):
        cells = [f"{tables[f][i].change.ratio:.2f} {tables[f][i].verdict}" for f in fractions]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
