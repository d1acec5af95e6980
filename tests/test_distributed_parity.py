"""Distributed variants on real loopback clusters (127.0.0.1) take the NumPy reference's steps
at the same global batch: MultiWorkerMirroredStrategy with ranks started cold or forked, and
Keras 3 `fit` under MirroredStrategy over two logical CPU devices. They time nothing and race
no deadline of their own (the cluster's start-up allowance is 90 s), so the parallel tier runs
them beside other tests; the launcher's failures, which race deadlines, are in
test_distributed.py and run alone."""

# ruff: noqa: F811 (pytest fixtures imported by name, then requested by parameter)

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.run.worker import WorkerConfig
from variants.base import SGD, Adam

# The clusters' fixtures (supervised, task_file) come from test_distributed.py, by name.
from .test_distributed import (  # noqa: F401
    ENV,
    ROOT,
    TEST_SECONDS,
    assert_parity,
    reference_losses,
    supervised,
    task_file,
    worker_config,
)


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "optimizer", "fork"),
    [
        ("tf2_multiworker", Adam(), False),
        ("tf2_multiworker", Adam(), True),
        ("tf2_multiworker", SGD(), True),
        ("tf_keras_multiworker", Adam(), False),
        ("tf_keras_multiworker", Adam(), True),
    ],
    ids=[
        "tf2_multiworker-adam-cold",
        "tf2_multiworker-adam-forked",
        "tf2_multiworker-sgd-forked",
        "tf_keras_multiworker-adam-cold",
        "tf_keras_multiworker-adam-forked",
    ],
)
def test_two_workers_match_one_process(name, optimizer, fork, digits_task, task_file, supervised):
    run = supervised(worker_config(task_file, name, optimizer), fork=fork)
    assert run.finish() == 0, run.log.read_text()[-2000:]
    assert ("forked ranks" if fork else "cold ranks") in run.log.read_text()
    assert run.final()["event"] == "done" and run.final()["workers"] == 2
    assert run.final()["task_fingerprint"] == digits_task.fingerprint()
    assert_parity(run.losses(), reference_losses(digits_task, optimizer))
    # every rank kept its own log
    assert len(list(run.tmp.glob(f"{run.name}.rank*.log"))) == 2


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", [Adam(), SGD()], ids=["adam", "sgd"])
def test_keras_mirrored_over_two_logical_devices(optimizer, digits_task, task_file, tmp_path):
    """One worker process, two replicas: what `--workers 2` runs for this variant."""
    config = worker_config(task_file, "keras_mirrored", optimizer)
    config = WorkerConfig(**{**config.__dict__, "workers": 2})
    out = subprocess.run(
        [sys.executable, "-m", "harness.run.worker", config.to_json()],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=TEST_SECONDS,
    )
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "done", out.stderr[-2000:]
    losses = np.concatenate([e["losses"] for e in events if e["event"] == "epoch"])
    assert_parity(losses, reference_losses(digits_task, optimizer))
