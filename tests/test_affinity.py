"""--thread-affinity round-robin: every thread of a worker on a CPU of its own, in turn, and
threads started later placed by the next call; recorded in the manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run import affinity

from .test_cli import mlpbench

pytestmark = pytest.mark.skipif(
    len(affinity.ALLOWED) < 2, reason="needs 2 CPUs and Linux' per-thread affinity"
)

# Starts threads, pins, starts more, pins again: prints each thread's CPUs after each call.
CHILD = """
import json, os, threading, time
from harness.run import affinity

stop = threading.Event()
def start(n):
    for _ in range(n):
        threading.Thread(target=stop.wait, daemon=True).start()
def masks():
    return sorted(sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task"))
start(3)
first = affinity.pin_threads()
after_first = masks()
start(2)  # started by a pinned thread: they inherit its one CPU
inherited = masks()
affinity.pin_threads()
print(json.dumps({"first": first, "after_first": after_first, "inherited": inherited,
                  "after_second": masks()}))
stop.set()
"""


def test_every_thread_gets_one_cpu_in_turn_and_later_threads_are_placed_again() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout)
    cpus = affinity.ALLOWED
    assert sum(result["first"].values()) == 4  # the main thread and three others
    for key, threads in (("after_first", 4), ("after_second", 6)):
        masks = result[key]
        assert len(masks) == threads and all(len(m) == 1 for m in masks)
        used = sorted(m[0] for m in masks)
        # in turn: no CPU holds two threads more than another does
        counts = [used.count(c) for c in cpus]
        assert max(counts) - min(counts) <= 1, (key, masks)
    # the two started by the pinned main thread shared its one CPU until placed again
    assert sum(m == result["after_first"][0] for m in result["inherited"]) >= 3


def test_a_run_records_where_its_threads_ran(tmp_path: Path) -> None:
    for mode in ("round-robin", "none"):
        out = tmp_path / mode
        result = mlpbench(
            "run", "--variants", "numpy_scratch", "--epochs", "2", "--seeds", "0",
            "--no-calibrate", "--thread-affinity", mode, "--out", str(out),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        config = json.loads((out / "manifest.json").read_text())["config"]
        assert config["thread_affinity"] == mode


# The main thread, which imported everything (the most CPU time), a thread that worked long ago
# (as an idle library pool's has) and a pool thread that has only just started working: the
# placement ranks them by the work since the last call, so the pool thread gets the CPU the
# main thread does not have. By all CPU time ever, `old` would have had it.
RECENT = """
import hashlib, json, os, threading, time
from harness.run import affinity

def work(seconds):
    h, end = hashlib.sha256(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        h.update(b"\\0" * (1 << 18))  # lets go of the GIL: the threads really run in parallel

go, stop = threading.Event(), threading.Event()
def old():
    work(0.5)  # much CPU time, then idle for good
    stop.wait()
def pool():
    go.wait()
    work(0.1)  # less CPU time than `old` in all, but all of it since the first placement
    stop.wait()
work(1.0)  # the main thread's imports
threads = [threading.Thread(target=old, name="old"), threading.Thread(target=pool, name="pool")]
for t in threads:
    t.start()
time.sleep(0.8)  # `old` has done its work
affinity.pin_threads()
go.set()
work(0.1)  # the main thread computes beside the pool thread
time.sleep(0.2)
affinity.pin_threads()
cpu = {t.name: sorted(os.sched_getaffinity(t.native_id)) for t in threads}
cpu["main"] = sorted(os.sched_getaffinity(0))
stop.set()
print(json.dumps(cpu))
"""


def test_the_threads_that_computed_since_the_last_placement_get_cpus_of_their_own() -> None:
    out = subprocess.run(
        [sys.executable, "-c", RECENT], capture_output=True, text=True, timeout=60, check=True
    )
    cpu = json.loads(out.stdout)
    assert all(len(m) == 1 for m in cpu.values()), cpu
    assert cpu["pool"] != cpu["main"], cpu
