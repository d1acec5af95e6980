"""Distributed variants on real loopback clusters (127.0.0.1): the launcher's failures (a killed
or frozen rank, a taken port, a peer that never connects) and Keras 3 `fit` under
MultiWorkerMirroredStrategy (an upstream limitation, recorded until it is fixed). Parity with the
NumPy reference at the same global batch is in test_distributed_parity.py.

Every cluster runs under the real supervisor (harness/run/cluster.py) in its own process group,
with ranks started cold or forked (`--fork`, what `mlpbench run` does); each test is bounded in
time and checks that no process it started outlives it."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import variants
from harness.run import cluster
from harness.run.worker import Events, WorkerConfig
from variants.base import SGD, Adam, optimizer_to_dict

from .conftest import BATCH, EPOCHS

LOSS_TOL = 1e-5
ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "CUDA_VISIBLE_DEVICES": "-1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
TEST_SECONDS = 80  # per cluster: two TensorFlow imports at once on a busy 2-core machine


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Run:
    """One supervised cluster: its events (the chief's), exit status and logs."""

    def __init__(
        self, tmp: Path, config: WorkerConfig, workers: int, extra: list[str], name: str = "run"
    ) -> None:
        self.tmp = tmp
        self.name = name
        self.log = tmp / f"{name}.log"
        read_fd, write_fd = os.pipe()
        config = WorkerConfig(**{**config.__dict__, "event_fd": write_fd, "workers": workers})
        argv = ["--workers", str(workers), "--logs", str(tmp / name), *extra]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "harness.run.cluster", "supervise", *argv, config.to_json()],
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=ENV,
                cwd=ROOT,
                start_new_session=True,
            )
        os.close(write_fd)
        self.stream = os.fdopen(read_fd, "r")
        self.events: list[dict] = []

    def next_event(self) -> dict | None:
        line = self.stream.readline()
        if not line:
            return None
        self.events.append(json.loads(line))
        return self.events[-1]

    def finish(self, timeout: float = TEST_SECONDS) -> int:
        """Every event until the supervisor exits. Past `timeout` seconds its group is killed,
        so a cluster that never ends fails the test (status -9) instead of hanging it."""
        timer = threading.Timer(timeout, self._kill_group)
        timer.start()
        try:
            while self.next_event() is not None:
                pass
            return self.process.wait()
        finally:
            timer.cancel()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def rank_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"rank \d+: pid (\d+)", self.log.read_text())]

    def losses(self) -> np.ndarray:
        return np.concatenate([e["losses"] for e in self.events if e["event"] == "epoch"])

    def final(self) -> dict:
        return self.events[-1]

    def kill(self) -> None:
        self._kill_group()
        self.process.wait()
        self.stream.close()


@pytest.fixture
def supervised(tmp_path):
    """Start clusters; on the way out, kill whatever is left and check nothing survives."""
    runs: list[Run] = []

    def start(
        config: WorkerConfig, workers: int = 2, extra: tuple[str, ...] = (), fork: bool = False
    ) -> Run:
        argv = [*extra, "--fork"] if fork else list(extra)
        run = Run(tmp_path, config, workers, argv, name=f"run{len(runs)}")
        runs.append(run)
        return run

    yield start
    pids = [pid for run in runs for pid in run.rank_pids()]
    for run in runs:
        run.kill()
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "a rank outlived its supervisor"


@pytest.fixture(scope="module")
def task_file(digits_task, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("task") / "digits.npz"
    digits_task.save(path)
    return path


def worker_config(task_file: Path, name: str, optimizer, epochs: int = EPOCHS) -> WorkerConfig:
    return WorkerConfig(
        task_path=str(task_file),
        variant=name,
        variant_path=variants.REGISTRY.get(name, name),
        optimizer=optimizer_to_dict(optimizer),
        batch_size=BATCH,
        epochs=epochs,
        device="cpu",
        spawn_time=time.time(),
    )


def reference_losses(task, optimizer) -> np.ndarray:
    v = variants.load(variants.REFERENCE)()
    v.build(task.spec, optimizer, task.init_weights)
    return np.concatenate([v.train_epoch(*task.epoch_data(e), BATCH) for e in range(EPOCHS)])


def assert_parity(losses: np.ndarray, reference: np.ndarray) -> float:
    assert losses.shape == reference.shape
    gap = np.abs(losses - reference)
    assert gap.max() < LOSS_TOL, f"step {gap.argmax()}: |dloss| = {gap.max():.2e}"
    return float(gap.max())


def test_layout_reads_the_class_attributes_without_importing():
    assert cluster.layout(variants.REGISTRY["tf2_multiworker"]) == "ranks"
    assert cluster.layout(variants.REGISTRY["tf_keras_multiworker"]) == "ranks"  # inherited
    assert cluster.layout(variants.REGISTRY["keras_mirrored"]) == "one_process"
    assert cluster.layout(variants.REGISTRY["tf_keras_sequential"]) == "single"
    assert cluster.layout(variants.REGISTRY["numpy_scratch"]) == "single"
    assert cluster.layout("no.such.module:Class") == "single"


@pytest.mark.system
def test_tf_config_names_every_peer_and_this_rank():
    config = json.loads(cluster.tf_config([1001, 1002], 1))
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1001", "127.0.0.1:1002"]},
        "task": {"type": "worker", "index": 1},
    }
    ports = cluster.free_ports(4)
    assert len(set(ports)) == 4


def test_listening_sees_a_listening_socket_without_connecting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert not cluster.listening(port)  # bound is not listening
        s.listen()
        assert cluster.listening(port)
    with socket.socket(socket.AF_INET6) as s:  # gRPC listens on [::]
        s.bind(("::", 0))
        s.listen()
        assert cluster.listening(s.getsockname()[1])


def test_forked_peers_start_once_the_chief_listens(tmp_path, capsys):
    """A peer that dialled the chief before it listened would wait out gRPC's 1 s reconnect
    backoff: the supervisor forks rank 1 only once rank 0 listens."""

    def rank_main(event_fd: int) -> int:
        config = json.loads(os.environ["TF_CONFIG"])
        port = int(config["cluster"]["worker"][0].rsplit(":", 1)[1])
        print(f"chief listening at my start: {cluster.listening(port)}")  # into the rank's log
        with os.fdopen(event_fd, "w") as stream:
            Events(stream).emit("start")
            if config["task"]["index"] == 0:
                time.sleep(0.5)  # the chief serves a while, as a real one does
            Events(stream).emit("done")
        return 0

    code, events, _ = _supervise_forked(tmp_path, rank_main)
    assert code == 0, events
    assert "chief listening at my start: True" in (tmp_path / "forked.rank1.log").read_text()
    notes = capsys.readouterr().out
    assert notes.index("rank 0 listens on port") < notes.index("rank 1: pid")


def _fd_table() -> list[tuple[str, int]]:
    """This process' open descriptors: (what each refers to, its access mode)."""
    table = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            flags = int(
                Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8
            )
            table.append((os.readlink(f"/proc/self/fd/{fd}"), flags & os.O_ACCMODE))
    return table


def _supervise_forked(tmp_path: Path, rank_main, private_fds=(), deadline=30.0):
    """A supervisor forking two ranks from this process that run `rank_main(event_fd)` (no
    TensorFlow; rank 0 listens on its port first, as a chief's server does): its exit status,
    the events it forwarded, its ranks' pids."""

    def listen_then_run(event_fd: int) -> int:
        config = json.loads(os.environ["TF_CONFIG"])
        if config["task"]["index"] == 0:
            port = int(config["cluster"]["worker"][0].rsplit(":", 1)[1])
            server = socket.socket()
            server.bind(("127.0.0.1", port))
            server.listen()
        return rank_main(event_fd)

    supervisor = cluster.Supervisor(
        None, 2, str(tmp_path / "forked"), deadline, deadline, fork=True,
        rank_main=listen_then_run, private_fds=private_fds,
    )  # fmt: skip
    sink = io.StringIO()
    pids: list[int] = []
    start_ranks = supervisor.start_ranks

    def start_and_note(attempt: int) -> None:
        start_ranks(attempt)
        pids.extend(r.process.pid for r in supervisor.ranks)

    supervisor.start_ranks = start_and_note
    code = supervisor.run(Events(sink))
    return code, [json.loads(line) for line in sink.getvalue().splitlines()], pids


@pytest.mark.serial
def test_forked_ranks_hold_only_their_own_ends_of_the_pipes(tmp_path):
    """A forked rank must not keep the supervisor's event stream open (the runner would not
    see the supervisor end) nor read ends of the ranks' pipes; it leads a process group of its
    own, reads its TF_CONFIG, and its exit is reaped."""
    private_r, private_w = os.pipe()
    os.close(private_r)  # only the write end, as the runner's event pipe in a supervisor

    def rank_main(event_fd: int) -> int:
        with os.fdopen(event_fd, "w") as stream:
            events = Events(stream)
            events.emit("start")
            own = os.readlink(f"/proc/self/fd/{event_fd}")
            index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
            events.emit("done", fds=_fd_table(), own=own, index=index,
                        group=os.getpgid(0) == os.getpid())  # fmt: skip
        return 0

    try:
        code, events, pids = _supervise_forked(tmp_path, rank_main, private_fds=(private_w,))
        private = os.readlink(f"/proc/self/fd/{private_w}")
    finally:
        os.close(private_w)
    assert code == 0, events
    final = events[-1]
    assert final["event"] == "done" and final["workers"] == 2 and final["index"] == 0
    assert final["group"]
    held = {target for target, _ in final["fds"]}
    assert private not in held
    pipes = [mode for target, mode in final["fds"] if target.startswith("pipe:")]
    assert (final["own"], os.O_WRONLY) in [tuple(f) for f in final["fds"]]
    assert os.O_RDONLY not in pipes and os.O_RDWR not in pipes, final["fds"]
    assert not [p for p in pids if alive(p)]


def test_a_forked_rank_that_fails_ends_the_run_with_every_rank_reaped(tmp_path):
    """Rank 1 raises before it reports; rank 0 waits for ever. The run fails with rank 1's exit
    as the reason, rank 0's stacks are dumped into its log, and both are gone."""

    def rank_main(event_fd: int) -> int:
        with os.fdopen(event_fd, "w") as stream:
            Events(stream).emit("start")
            if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
                raise RuntimeError("rank 1 breaks")
            time.sleep(3600)
        return 0

    code, events, pids = _supervise_forked(tmp_path, rank_main)
    assert code == 1
    assert events[-1]["event"] == "error"
    assert "rank 1 of 2" in events[-1]["error"] and "status 1" in events[-1]["error"], events
    assert "RuntimeError: rank 1 breaks" in (tmp_path / "forked.rank1.log").read_text()
    assert "in rank_main" in (tmp_path / "forked.rank0.log").read_text()  # the watchdog's dump
    assert len(pids) == 2 and not [p for p in pids if alive(p)]


def test_a_forked_rank_hanging_after_its_result_is_killed(tmp_path, monkeypatch):
    """A rank that reported `done` and closed its stream but does not exit is killed after the
    exit grace; its result stands."""
    monkeypatch.setattr(cluster, "EXIT_GRACE_SECONDS", 0.5)

    def rank_main(event_fd: int) -> int:
        with os.fdopen(event_fd, "w") as stream:
            Events(stream).emit("start")
            Events(stream).emit("done", value=1)
        time.sleep(3600)
        return 0

    started = time.monotonic()
    code, events, pids = _supervise_forked(tmp_path, rank_main)
    assert code == 0 and events[-1] == {"event": "done", "workers": 2, "value": 1}
    assert time.monotonic() - started < 10
    assert not [p for p in pids if alive(p)]


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["cold", "forked"])
def test_a_killed_rank_fails_the_run_fast_and_every_process_is_reaped(task_file, supervised, fork):
    run = supervised(worker_config(task_file, "tf2_multiworker", Adam(), epochs=2000), fork=fork)
    deadline = time.monotonic() + TEST_SECONDS
    while (event := run.next_event()) is not None and event["event"] != "epoch":
        assert time.monotonic() < deadline
    assert event is not None, run.log.read_text()[-2000:]
    chief, peer = run.rank_pids()
    os.kill(peer, signal.SIGKILL)
    killed = time.monotonic()
    assert run.finish(timeout=30) == 1
    assert time.monotonic() - killed < 20  # the collective fails at once, not at a timeout
    error = run.final()["error"]
    assert run.final()["event"] == "error"
    assert "rank 1 of 2" in error and "SIGKILL" in error, error
    assert not alive(chief) and not alive(peer)


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["cold", "forked"])
def test_a_frozen_rank_fails_the_run_instead_of_hanging_it(task_file, supervised, fork):
    """SIGSTOP: the peer's collective gives up (heartbeat or collective timeout) and the run
    fails with every rank killed, well before any suite timeout."""
    run = supervised(worker_config(task_file, "tf2_multiworker", Adam(), epochs=2000), fork=fork)
    while (event := run.next_event()) is not None and event["event"] != "epoch":
        pass
    assert event is not None, run.log.read_text()[-2000:]
    chief, peer = run.rank_pids()
    os.kill(peer, signal.SIGSTOP)
    frozen = time.monotonic()
    assert run.finish(timeout=TEST_SECONDS) == 1
    assert time.monotonic() - frozen < 70  # the variants' collective timeout is 60 s
    assert run.final()["event"] == "error"
    error = run.final()["error"]
    assert error.startswith("rank 0 of 2"), error
    assert "heartbeat" in error or "DeadlineExceeded" in error, error
    assert ' File "' not in error  # TensorFlow's op stack stays in the log
    assert not alive(chief) and not alive(peer)


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["cold", "forked"])
def test_killing_the_supervisor_kills_every_rank(task_file, supervised, fork):
    """What the runner does at its timeout: SIGKILL to the supervisor's group. The ranks have
    groups of their own, and die with their parent (PDEATHSIG)."""
    run = supervised(worker_config(task_file, "tf2_multiworker", Adam(), epochs=2000), fork=fork)
    while (event := run.next_event()) is not None and event["event"] != "epoch":
        pass
    assert event is not None, run.log.read_text()[-2000:]
    ranks = run.rank_pids()
    assert all(os.getpgid(pid) == pid for pid in ranks)  # each rank leads its own group
    os.killpg(run.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in ranks) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in ranks if alive(p)]


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["cold", "forked"])
def test_a_diverging_cluster_is_a_divergence_not_a_failure(task_file, supervised, fork):
    run = supervised(worker_config(task_file, "tf2_multiworker", SGD(lr=1e30), epochs=3), fork=fork)
    assert run.finish() == 3, run.log.read_text()[-2000:]
    final = run.final()
    assert final["event"] == "diverged" and not math.isfinite(final["loss"]), final


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["cold", "forked"])
def test_a_taken_port_is_retried_on_other_ports(task_file, supervised, digits_task, fork):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (free,) = cluster.free_ports(1)
        run = supervised(
            worker_config(task_file, "tf2_multiworker", SGD(), epochs=1),
            extra=("--ports", f"{port},{free}"),
            fork=fork,
        )
        assert run.finish() == 0, run.log.read_text()[-3000:]
    log = run.log.read_text()
    assert "could not bind its port; starting again on other ports" in log
    assert "# attempt 2" in log
    assert run.final()["event"] == "done"


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["cold", "forked"])
def test_a_peer_that_never_connects_fails_at_the_startup_deadline(task_file, supervised, fork):
    """The chief would wait for ever for a peer that never starts its strategy; the start-up
    deadline ends the run, after a dump of every rank's stacks into its log."""
    config = worker_config(task_file, "tests.distributed_variants:NeverConnects", SGD(), 1)
    # long enough for a cold rank to import TensorFlow and reach its sleep in build
    run = supervised(config, extra=("--startup", "8"), fork=fork)
    started = time.monotonic()
    assert run.finish() == 1
    assert time.monotonic() - started < 30
    error = run.final()["error"]
    assert "did not start within 8 s" in error and "rank(s) 0, 1" in error, error
    # the watchdog's stack dump: the peer is caught in its sleep
    assert "in build" in (run.tmp / f"{run.name}.rank1.log").read_text()


@pytest.mark.system
@pytest.mark.slow
def test_keras3_fit_under_multiworker_is_still_unsupported(task_file, supervised):
    """keras-team/keras#20585: Keras 3 `fit` under MultiWorkerMirroredStrategy fails. The run
    must be a clean failure with that reason. When a Keras release fixes it this test fails:
    then add a `keras_multiworker` variant and delete this test."""
    config = worker_config(task_file, "tests.distributed_variants:Keras3MultiWorker", SGD(), 1)
    run = supervised(config)
    code = run.finish()
    final = run.final()
    assert not (code == 0 and final["event"] == "done"), (
        "Keras 3 fit now works under MultiWorkerMirroredStrategy (keras-team/keras#20585 "
        "fixed?): add it as a variant"
    )
    assert final["event"] == "error"
    known = ("PerReplica", "Invalid reduction dimension")
    assert any(k in final["error"] for k in known), final["error"]


@pytest.mark.system
@pytest.mark.slow
def test_mlpbench_run_with_two_workers(tmp_path):
    """The suite's path: `--workers 2` runs the multi-worker variant as a cluster and the
    Keras one over two devices; both pass parity; the reference runs as usual."""
    from .test_cli import SMALL, mlpbench

    out = tmp_path / "suite"
    result = mlpbench(
        "run", *SMALL, "--variants", "tf2_multiworker,keras_mirrored", "--workers", "2",
        "--out", str(out), timeout=TEST_SECONDS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["workers"] == 2
    assert {r["variant"]: r["status"] for r in manifest["runs"]} == {
        "numpy_scratch": "ok",
        "tf2_multiworker": "ok",
        "keras_mirrored": "ok",
    }
    summary = pd.read_csv(out / "summary.csv")
    assert summary.set_index("variant")["parity_pass"].drop("numpy_scratch").all()
    logs = sorted(p.name for p in (out / "logs").glob("tf2_multiworker-seed0*.log"))
    assert logs == [
        "tf2_multiworker-seed0.log",
        "tf2_multiworker-seed0.rank0.log",
        "tf2_multiworker-seed0.rank1.log",
    ]
    # warm by default: the supervisor comes from the runner's warm server and forks its ranks
    assert "forked ranks" in (out / "logs" / "tf2_multiworker-seed0.log").read_text()


@pytest.mark.system
@pytest.mark.slow
def test_mlpbench_run_cold_start_starts_cold_ranks(tmp_path):
    """`--cold-start`: the supervisor and each rank are fresh interpreters."""
    from .test_cli import SMALL, mlpbench

    out = tmp_path / "suite"
    result = mlpbench(
        "run", *SMALL, "--variants", "tf2_multiworker", "--workers", "2", "--cold-start",
        "--no-parity", "--out", str(out), timeout=TEST_SECONDS,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "cold ranks" in (out / "logs" / "tf2_multiworker-seed0.log").read_text()


def test_workers_must_be_a_positive_integer():
    from .test_cli import assert_one_line_error, mlpbench

    assert_one_line_error(mlpbench("run", "--variants", "tf2_multiworker", "--workers", "0"))


@pytest.mark.system
def test_resume_keeps_the_number_of_workers(tmp_path):
    from .test_cli import SMALL, assert_one_line_error, mlpbench

    out = tmp_path / "suite"
    first = mlpbench(
        "run", *SMALL, "--variants", "numpy_scratch", "--workers", "2", "--out", str(out)
    )
    assert first.returncode == 0, first.stderr
    assert_one_line_error(mlpbench("run", *SMALL, "--variants", "numpy_scratch", "--resume",
                                   "--out", str(out)))  # fmt: skip
    again = mlpbench("run", *SMALL, "--variants", "numpy_scratch", "--workers", "2", "--resume",
                     "--out", str(out))  # fmt: skip
    assert again.returncode == 0, again.stderr
