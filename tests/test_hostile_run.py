"""Hostile input to `mlpbench run`, each case once failing: --force that lost the old results,
memory without a bound, two suites in one folder, places nothing can be written, a broken loss
contract, and what a kill -9 or a chatty variant left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import validate
from harness.datasets import load_digits
from harness.results import storage
from harness.task import make_task

from .test_cli import ENV, MLPBENCH, ROOT, SMALL, assert_one_line_error, mlpbench

NUMPY = [*SMALL, "--variants", "numpy_scratch"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A small finished suite, to be copied by tests that try to lose it."""
    out = tmp_path_factory.mktemp("finished") / "r"
    result = mlpbench("run", *NUMPY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def copy_of(folder: Path, to: Path) -> Path:
    subprocess.run(["cp", "-a", str(folder), str(to)], check=True)
    return to


def test_force_keeps_the_old_results_when_the_new_suite_cannot_start(finished, tmp_path):
    out = copy_of(finished, tmp_path / "r")
    before = sorted(p.name for p in out.iterdir())
    result = mlpbench("run", *NUMPY, "--hidden", "100000000", "--force", "--out", str(out))
    assert_one_line_error(result)
    assert "of memory" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def test_force_under_a_memory_limit_keeps_the_old_results(finished, tmp_path):
    """`ulimit -v` below what the model needs: refused from the limit, not a MemoryError."""
    out = copy_of(finished, tmp_path / "r")
    cmd = " ".join([*MLPBENCH, "run", *NUMPY, "--hidden", "5000000", "--force", "--out", str(out)])
    result = subprocess.run(
        ["bash", "-c", f"ulimit -v 3000000 && exec {cmd}"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result)
    assert (out / storage.MANIFEST).exists() and (out / storage.SUMMARY).exists()


def test_force_never_deletes_the_folder_you_are_in(finished, tmp_path):
    out = copy_of(finished, tmp_path / "r")
    for cwd, target in ((out, "."), (out / "logs", "..")):
        result = subprocess.run(
            [*MLPBENCH, "run", *NUMPY, "--out", target, "--force"],
            cwd=cwd,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert_one_line_error(result)
        assert "the folder you are in" in result.stderr
        assert (out / storage.MANIFEST).exists()


def test_force_replaces_the_old_suite_once_the_new_one_starts(finished, tmp_path):
    out = copy_of(finished, tmp_path / "r")
    (out / "logs" / "old-run.log").write_text("from the suite being replaced\n")
    result = mlpbench("run", *NUMPY, "--epochs", "3", "--force", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert not (out / "logs" / "old-run.log").exists()
    assert pd.read_csv(out / storage.EPOCHS)["epoch"].max() == 3


@pytest.mark.parametrize(
    "args",
    [
        ["--epochs", "99999999999999999999"],
        ["--hidden", "100000000,100000000"],
        ["--dataset", "digits", "--epochs", "2000000000"],
    ],
    ids=["epochs beyond any machine", "two huge layers", "two billion epochs"],
)
def test_a_suite_too_big_for_the_machine_is_refused_before_it_starts(args, tmp_path):
    out = tmp_path / "r"
    result = mlpbench("run", *NUMPY, *args, "--out", str(out))
    assert_one_line_error(result)
    assert "this suite needs about" in result.stderr and "is free" in result.stderr
    assert not out.exists()


def test_batch_orders_cost_nothing_until_their_epoch():
    """The orders are derived per epoch: a billion-epoch task is as small as a 2-epoch one,
    and any epoch's order is the same whenever it is asked for."""
    digits = load_digits()
    long, short = (make_task(digits, (16,), epochs, seed=3) for epochs in (10**9, 2))
    assert (long.epoch_order(1) == short.epoch_order(1)).all()
    last = long.epoch_order(10**9 - 1)
    assert sorted(last.tolist()) == list(range(len(digits.x_train)))
    assert not (long.epoch_order(0) == long.epoch_order(1)).all()
    with pytest.raises(IndexError):
        short.epoch_order(2)


def test_a_second_suite_into_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    fd = storage.lock_folder(out)  # as a running suite holds it
    try:
        result = mlpbench("run", *NUMPY, "--out", str(out))
        assert_one_line_error(result)
        assert "being written by another mlpbench run" in result.stderr
        assert f"pid {os.getpid()}" in result.stderr
    finally:
        os.close(fd)
    assert mlpbench("run", *NUMPY, "--out", str(out)).returncode == 0  # free again


def test_default_folders_of_one_second_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = validate.default_out()
    first.mkdir(parents=True)
    second = validate.default_out()
    assert second != first and not second.exists()


def _readonly_mount(tmp_path: Path) -> Path:
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    return mount


@pytest.mark.parametrize("where", ["under a file", "under /sys", "read-only filesystem"])
def test_an_out_that_cannot_be_written_is_one_line(where, tmp_path):
    if where == "under a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "r"
    elif where == "under /sys":
        out = Path("/sys/mlpbench-results")
    else:
        out = _readonly_mount(tmp_path) / "r"
    try:
        result = mlpbench("run", *NUMPY, "--out", str(out))
    finally:
        if where == "read-only filesystem":
            subprocess.run(["umount", str(out.parent)], check=True)
    assert_one_line_error(result)
    assert f"--out {out}: cannot write there" in result.stderr


def test_none_losses_are_a_protocol_failure_that_resume_retries(tmp_path):
    out = tmp_path / "r"
    path = "tests.faulty_variants:NoneLosses"
    args = ["run", *SMALL, "--variant", path, "--no-parity", "--out", str(out)]
    result = mlpbench(*args)
    assert result.returncode == 1, result.stderr
    row = pd.read_csv(out / storage.SUMMARY).iloc[0]
    assert row["status"] == "failed", row["error"]
    assert "train_epoch returned None where a loss should be" in row["error"]
    resumed = mlpbench(*args, "--resume")
    assert "1 of 1 runs already done" not in resumed.stdout + resumed.stderr
    assert storage.load_results(out).manifest["runs"][0]["attempts"] == 1  # run again, anew


@pytest.mark.system
def test_what_a_kill_9_left_is_removed_by_the_next_suite(finished, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**ENV, "TMPDIR": str(tmpdir)}
    out = tmp_path / "r"
    slow = ["run", *SMALL, "--variants", "numpy_scratch", "--epochs", "400", "--out", str(out)]
    runner = subprocess.Popen([*MLPBENCH, *slow], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(tmpdir.glob(f"mlpbench-tasks-{runner.pid}-*/seed0.npz")):
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        subprocess.run(["pkill", "-9", "-f", str(tmpdir)])  # its worker, in its own group
    assert list(tmpdir.glob(f"mlpbench-tasks-{runner.pid}-*"))
    # the cut-short write of a CSV, as a kill during save leaves it
    (out / ".epochs.csv.k2x9_a.tmp").write_text("variant,seed,ep")
    result = subprocess.run(
        [*MLPBENCH, *slow, "--resume"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 2, result.stderr
    assert not list(tmpdir.glob("mlpbench-tasks-*")), "the dead suite's task files stayed"
    assert not list(out.glob(".*.tmp"))


def test_results_files_are_as_readable_as_the_logs(finished):
    modes = {p.name: p.stat().st_mode & 0o777 for p in finished.iterdir() if p.is_file()}
    log = next((finished / "logs").iterdir()).stat().st_mode & 0o777
    for name in (storage.MANIFEST, storage.SUMMARY, storage.STEPS, storage.EPOCHS):
        assert modes[name] == log, modes


def test_a_chatty_variant_keeps_a_bounded_log_with_its_end(tmp_path):
    out = tmp_path / "r"
    path = "tests.faulty_variants:Chatty"
    result = mlpbench("run", *SMALL, "--variant", path, "--no-parity", "--out", str(out))
    assert result.returncode == 0, result.stderr
    (log,) = (out / "logs").glob("*Chatty*")
    text = log.read_text()
    assert log.stat().st_size <= 4 << 20, log.stat().st_size  # it printed 36 MB
    assert "bytes of output cut by mlpbench" in text
    assert text.rstrip().endswith("the last line of this epoch"), text[-200:]
    assert text.startswith("# ")  # the head the runner wrote stays
