from __future__ import annotations

import os

# Quiet TensorFlow's C++ start-up logging; set before any test imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from harness.datasets import load_digits  # noqa: E402
from harness.task import Task, make_task  # noqa: E402

# System tests that neither time anything nor race anything (no speed or CPU reading, no
# signals, kill deadlines or ports chosen by hand): `make test-all` runs them in its parallel
# part, beside other tests. Every other system test is also `serial`: it runs alone, after
# that part.
SHARE_THE_MACHINE = {
    "test_cli.py", "test_distributed_parity.py", "test_dtype.py", "test_parity.py",
    "test_report_browser.py", "test_hostile_inputs.py", "test_wide_deep_suite.py",
    "test_wide_deep_float64.py", "test_wide_deep_tf.py", "test_wide_deep_keras.py",
}  # fmt: skip

# System tests that race deadlines (a frozen or killed rank, a peer that never connects, a taken
# port) but read no speed: `two_at_a_time`, run in a step of their own between the parallel part
# and the serial one, in two processes, beside each other only. They spend most of their time
# waiting on a deadline (1.05 of the 2 cores busy when run alone, 124 s on an Intel Xeon), and
# a deadline that holds beside a CPU-bound test (tried in the parallel part, CI passed) holds
# beside another one that mostly waits.
TWO_AT_A_TIME = {"test_distributed.py"}


# The files that take longest, handed out first (longest-processing-time-first scheduling):
# pytest-xdist gives each process a whole file (`--dist loadfile`) in collection order when
# `--no-loadscope-reorder` is given (by default it hands out the files with most tests first, and
# the single-test float64 file, 86 s, then ran alone at the end: 443 s against the other
# process' 351 s). Ordered by their measured times in the full tier's parallel part (Intel
# Xeon, 2 cores), every file not named here follows in collection order.
LONGEST_FIRST = (
    "test_parity.py", "test_wide_deep_float64.py", "test_wide_deep_keras.py",
    "test_hostile_inputs.py", "test_wide_deep_suite.py", "test_distributed_parity.py",
    "test_as_written.py", "test_runner.py", "test_wide_deep_tf.py", "test_hostile_results.py",
    "test_floor.py", "test_report.py", "test_cli.py", "test_hostile.py",
    "test_variant_contract.py", "test_hostile_run.py", "test_resolution.py", "test_compare.py",
)  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.get_closest_marker("system") or item.get_closest_marker("serial"):
            continue
        if item.path.name in TWO_AT_A_TIME:
            item.add_marker(pytest.mark.two_at_a_time)
        elif item.path.name not in SHARE_THE_MACHINE:
            item.add_marker(pytest.mark.serial)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


EPOCHS = 3
BATCH = 128  # digits has 1347 training images: 10 full batches and a short one of 67


@pytest.fixture(scope="session")
def digits_task() -> Task:
    return make_task(load_digits(), hidden=(64, 32), epochs=EPOCHS, seed=0)
