"""Nothing a suite started outlives it, and nothing it did not write is deleted: a variant's own
child processes, a worker whose suite was killed with SIGKILL, a second Ctrl-C during the
shutdown, and --force on a folder that only looks like a results folder."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.cli.main import INTERRUPTS, interrupt_once
from harness.datasets import load_digits
from harness.run.config import SuiteError
from harness.run.folder import check_replaceable
from harness.run.launch import Launcher
from harness.run.process import WorkerProcess
from harness.run.record import RunRecord
from harness.run.suite import interrupts_held
from harness.run.sweep import SweepError, SweepPlan
from harness.run.sweep import check as check_sweep
from harness.run.worker import WorkerConfig
from harness.task import make_task
from variants.base import SGD, optimizer_to_dict

from .faulty_variants import PIDS_DIR
from .test_cli import ENV, MLPBENCH, ROOT, SMALL, assert_one_line_error, mlpbench

GRACE_SECONDS = 5.0  # for the kernel to end a process it has been told to kill


def _alive(pid: int) -> bool:
    """Running, or stopped: anything but gone or a zombie (dead, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _noted(folder: Path, what: str) -> list[int]:
    """The pids the faulty variants wrote down (tests/faulty_variants.py: _note_pid)."""
    return [int(p.name.split("-")[1]) for p in folder.glob(f"{what}-*")]


def _survivors(pids: list[int], grace: float = GRACE_SECONDS) -> list[int]:
    deadline = time.monotonic() + grace
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@contextlib.contextmanager
def _reaping(folder: Path):
    """Whatever the variants noted is killed when the test ends, passed or failed: they are
    this test's processes (a `sleep` or a worker of these variants), never anyone else's."""
    try:
        yield
    finally:
        for path in folder.glob("*-*"):
            pid = int(path.name.split("-")[1])
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"sleep" in cmdline or b"harness.run" in cmdline:
                    os.kill(pid, signal.SIGKILL)


def _env(pids: Path) -> dict[str, str]:
    return {**ENV, PIDS_DIR: str(pids)}


# -- a variant's own child processes --------------------------------------------------------------


def _run_worker(tmp_path: Path, variant: str, pids: Path) -> WorkerProcess:
    """One cold worker of `variant` as the runner starts and ends it, to its end."""
    task = make_task(load_digits(), (16,), 1, seed=0)
    task.save(tmp_path / "task.npz")
    config = WorkerConfig(
        task_path=str(tmp_path / "task.npz"),
        variant=variant,
        variant_path=f"tests.faulty_variants:{variant}",
        optimizer=optimizer_to_dict(SGD(0.1)),
        batch_size=128,
        epochs=1,
        device="cpu",
    )
    env = {**_env(pids), "PYTHONPATH": str(ROOT)}
    launcher = Launcher(env, tmp_path / "server.log", warm=False)
    events: queue.Queue = queue.Queue()
    worker = WorkerProcess(
        RunRecord(variant, 0), config, launcher, False, tmp_path / "w.log", events
    )
    deadline = time.monotonic() + 60
    while (item := events.get(timeout=60))[1] is not None:
        worker.final = item[1]
        assert time.monotonic() < deadline
    worker.reap(timeout=60)
    return worker


@pytest.mark.parametrize("variant", ["SpawnsChild", "SpawnsDaemon"])
def test_what_a_worker_started_ends_with_it(variant, tmp_path):
    """The cheap check: one worker, as the runner reaps it, leaves no process of its variant's
    behind, whether in its process group or in a session of its own."""
    pids = tmp_path / "pids"
    pids.mkdir()
    with _reaping(pids):
        worker = _run_worker(tmp_path, variant, pids)
        assert worker.outcome(60, tmp_path)[0] == "ok", (tmp_path / "w.log").read_text()
        started = _noted(pids, "child") + _noted(pids, "daemon")
        assert started, "the variant started nothing"
        assert not _survivors(started), f"{variant}'s sleep outlived its worker"


@pytest.mark.system
@pytest.mark.parametrize("variant", ["SpawnsChild", "SpawnsDaemon"])
def test_a_variants_child_processes_end_with_the_suite(variant, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    out = tmp_path / "r"
    path = f"tests.faulty_variants:{variant}"
    with _reaping(pids):
        result = subprocess.run(
            [*MLPBENCH, "run", *SMALL, "--variant", path, "--no-parity", "--out", str(out)],
            cwd=ROOT,
            env=_env(pids),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        started = _noted(pids, "child") + _noted(pids, "daemon")
        assert started, "the variant started nothing"
        assert not _survivors(started), f"{variant}'s sleep outlived the suite"


# -- a worker whose suite was killed ------------------------------------------------------------


@pytest.mark.system
def test_a_worker_dies_with_its_killed_suite(tmp_path):
    """kill -9 of the suite runs no clean-up of its own: the kernel must end its worker, which
    would otherwise write a BrokenPipe traceback into the log of the run resumed after it."""
    pids = tmp_path / "pids"
    pids.mkdir()
    out = tmp_path / "r"
    args = ["run", *SMALL, "--variants", "numpy_scratch", "--seeds", "0,1"]
    args += ["--variant", "tests.faulty_variants:Slow", "--no-parity", "--out", str(out)]
    with _reaping(pids):
        suite = subprocess.Popen(
            [*MLPBENCH, *args], cwd=ROOT, env=_env(pids), stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while not _noted(pids, "worker"):
                assert time.monotonic() < deadline and suite.poll() is None
                time.sleep(0.05)
        finally:
            suite.kill()
            suite.wait()
        (worker,) = _noted(pids, "worker")
        assert not _survivors([worker]), "the worker outlived its killed suite"
        log = out / "logs" / "tests_faulty_variants_Slow-seed0.log"
        assert "BrokenPipeError" not in log.read_text()


# -- Ctrl-C, and again during the shutdown ------------------------------------------------------


@pytest.fixture
def ctrl_c_reaches_children():
    """A suite started from a background job would inherit SIGINT ignored (see test_runner)."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_only_the_first_interrupt_counts():
    """The cheap check, in this process: two signals held while a worker starts make one
    KeyboardInterrupt, and any after it are ignored for the rest of the shutdown."""
    saved = {number: signal.getsignal(number) for number in INTERRUPTS}
    try:
        for number in INTERRUPTS:
            signal.signal(number, interrupt_once)
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)  # would raise again, in the middle of the clean-up
        signal.raise_signal(signal.SIGTERM)
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


@pytest.mark.system
@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_again_and_again_during_the_shutdown_is_one_line_and_130(tmp_path):
    """An impatient user, or `timeout` passing on the Ctrl-C it got too: the first SIGINT
    begins the shutdown and every later one must leave it alone."""
    out = tmp_path / "r"
    args = ["run", *SMALL, "--variants", "numpy_scratch", "--seeds", "0,1", "--no-parity"]
    args += ["--variant", "tests.faulty_variants:Hang", "--timeout", "120", "--out", str(out)]
    suite = subprocess.Popen(
        [*MLPBENCH, *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job has
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "logs" / "tests_faulty_variants_Hang-seed0.log").exists():
            assert time.monotonic() < deadline and suite.poll() is None
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while suite.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(suite.pid, signal.SIGINT)
            time.sleep(0.01)
        _, stderr = suite.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(suite.pid, signal.SIGKILL)
        suite.wait()
    assert "Traceback" not in stderr, stderr
    assert suite.returncode == 130, stderr
    assert len([ln for ln in stderr.splitlines() if "interrupted" in ln]) == 1, stderr


# -- --force on a folder that is not mlpbench's --------------------------------------------------

MANIFEST = '{"schema_version": 1, "runs": []}'
LOOKALIKES = {
    "a manifest.json that is not JSON": {"manifest.json": "{bad"},
    "another tool's manifest.json": {"manifest.json": '{"name": "my-app", "version": "1.0"}'},
    "a results folder with a file of the user's": {"manifest.json": MANIFEST},
}


def _lookalike(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in {"precious.txt": "not mlpbench's\n", **files}.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("files", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_force_leaves_a_folder_that_only_looks_like_results(files, tmp_path):
    out = _lookalike(tmp_path / "d", files)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SuiteError, match="refusing to delete"):
        check_replaceable(out)
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")  # nothing to lose
    results = tmp_path / "r"
    results.mkdir()
    (results / "manifest.json").write_text(MANIFEST)
    (results / "logs").mkdir()
    (results / ".summary.csv.k2x9_a.tmp").write_text("variant,se")  # a write cut short
    check_replaceable(results)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.system
@pytest.mark.parametrize("files", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_run_force_refuses_a_folder_that_only_looks_like_results(files, tmp_path):
    out = _lookalike(tmp_path / "d", files)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = mlpbench("run", *SMALL, "--variants", "numpy_scratch", "--out", str(out), "--force")
    assert_one_line_error(result)
    assert "refusing to delete" in result.stderr and "choose another --out" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no lock left either


SWEEP_LOOKALIKES = {
    "a sweep.json that is not JSON": {"sweep.json": "{bad"},
    "a sweep folder with a file of the user's": {
        "sweep.json": '{"schema_version": 1, "points": [{"batch_size": 32, "path": "bs32"}]}'
    },
}


@pytest.mark.parametrize("files", SWEEP_LOOKALIKES.values(), ids=SWEEP_LOOKALIKES.keys())
def test_sweep_force_leaves_a_folder_that_only_looks_like_a_sweep(files, tmp_path):
    out = _lookalike(tmp_path / "d", files)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SweepError, match="refusing to delete"):
        check_sweep(SweepPlan(out, (), (), resume=False, force=True))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.system
def test_sweep_force_refuses_a_folder_that_only_looks_like_a_sweep(tmp_path):
    out = _lookalike(tmp_path / "d", {"sweep.json": "{bad"})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = [*SMALL, "--variants", "numpy_scratch", "--batch-sizes", "32,64"]
    result = mlpbench("sweep", *args, "--out", str(out), "--force")
    assert_one_line_error(result)
    assert "refusing to delete" in result.stderr and "choose another --out" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
