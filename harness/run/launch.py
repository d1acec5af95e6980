"""Starts the worker process of one run, cold or warm.

cold: a fresh interpreter, `python -m harness.run.worker`: the run pays Python's and its
  framework's start-up itself.
warm: a fork of a server process that has imported TensorFlow and Keras and done nothing else
  (harness/run/preload.py). The child is still a fresh process with empty TensorFlow state, its
  own memory and its own process group; only the ~5 s import is paid once per suite instead
  of once per run. Its measured time is added back to each run's import and first-step
  seconds. Variants whose source imports neither framework (the NumPy reference) always start
  cold, so their memory does not include TensorFlow's.

A distributed run's supervisor is forked the same way (`Launcher.fork`, harness/run/cluster.py),
and forks its ranks in turn: nothing on that chain has started TensorFlow's runtime.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from harness.run.worker import WorkerConfig

FRAMEWORKS = frozenset({"tensorflow", "keras"})


def uses_framework(imported: set[str]) -> bool:
    return any(name.split(".")[0] in FRAMEWORKS for name in imported)


class WarmProcess:
    """A forked worker behind the interface of `subprocess.Popen` that the runner uses."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
        return self._process.exitcode


def _ready() -> None:
    """Run once in a forked child: returns when the server has finished its imports."""


def become_run(events: Connection, log: str) -> int:
    """In a child forked from the server: become a process group of its own, write to the run's
    log, and return the run's event file descriptor (taken over from `events`)."""
    os.setsid()  # so a timeout kills whatever this run started, as for a cold worker
    # the server took the runner's sys.path; a user's package is found through PYTHONPATH
    extra = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    sys.path[:0] = [p for p in extra if p and p not in sys.path]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    faulthandler.enable()
    event_fd = os.dup(events.fileno())
    events.close()
    return event_fd


def _warm_main(config: WorkerConfig, events: Connection, log: str) -> None:
    """The forked child: become a process group of its own, write to the run's log, run."""
    from harness.run import worker

    config = replace(config, event_fd=become_run(events, log))
    sys.exit(worker.main([config.to_json()]))


@contextlib.contextmanager
def _environment(env: dict[str, str], stderr_to: Path) -> Iterator[None]:
    """The server is started with this environment and its start-up noise goes to a log."""
    saved_env = dict(os.environ)
    saved_fds = os.dup(1), os.dup(2)
    log = os.open(stderr_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.environ.clear()
        os.environ.update(env)
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in (*saved_fds, log):
            os.close(fd)
        os.environ.clear()
        os.environ.update(saved_env)


def _run_module(module: str, argv: list[str], stdout: str) -> None:
    """`python -m module argv...` inside a forked child, its stdout to a file."""
    fd = os.open(stdout, os.O_WRONLY | os.O_TRUNC | os.O_CREAT)
    os.dup2(fd, 1)
    os.close(fd)
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def spawn(
    argv: list[str], write_fd: int, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """A fresh interpreter (`python argv...`) that reports on `write_fd` and writes to `log`."""
    with open(log, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            env=env,
            # its own process group: a timeout kills everything it started, and the
            # terminal's Ctrl-C reaches only the runner, which then stops it cleanly
            start_new_session=True,
        )


class Launcher:
    """Starts workers; `warm` enables the fork server for framework variants."""

    def __init__(self, env: dict[str, str], server_log: Path, warm: bool = True) -> None:
        self.env = env
        self.server_log = server_log
        self.warm = warm and "forkserver" in multiprocessing.get_all_start_methods()
        self._ctx: Any = None

    def start_server(self) -> None:
        """Start the fork server now (if warm starts are on) rather than at the first run."""
        if self.warm:
            self._server()

    def _server(self) -> Any:
        """The fork server, started and loaded on first use (so a suite of NumPy variants never
        imports TensorFlow), and waited for, so that no run's timing includes its start-up."""
        if self._ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["harness.run.preload"])
            with _environment(self.env, self.server_log):
                probe = ctx.Process(target=_ready)
                probe.start()
            probe.join()
            self._ctx = ctx
        return self._ctx

    def start(
        self, config: WorkerConfig, log: Path, write_fd: int, warm: bool
    ) -> subprocess.Popen[bytes] | WarmProcess:
        """Start the run's worker; it reports on `write_fd` (which the caller then closes)."""
        if self.warm and warm:
            return self.fork(_warm_main, config, write_fd, log)
        argv = ["-X", "faulthandler", "-m", "harness.run.worker"]
        return spawn([*argv, replace(config, event_fd=write_fd).to_json()], write_fd, log, self.env)

    def fork(
        self, target: Callable[[Any, Connection, str], None], arg: Any, write_fd: int, log: Path
    ) -> WarmProcess:
        """`target(arg, events, log)` in a child forked from the server (started if need be);
        the child reports on `events`, its end of `write_fd` (see `become_run`)."""
        ctx = self._server()
        events = Connection(os.dup(write_fd), readable=False)
        process = ctx.Process(target=target, args=(arg, events, str(log)))
        process.start()
        events.close()
        return WarmProcess(process)

    def run_module(self, module: str, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run `python -m module argv...` to its end, warm when the server is in use (no second
        TensorFlow import); returns its exit status and stdout (stderr goes to a log)."""
        if not (self.warm and self._ctx is not None):
            cmd = [sys.executable, "-m", module, *argv]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env)
            return out.returncode, out.stdout
        with tempfile.NamedTemporaryFile("r", suffix=".out") as stdout:
            process = self._ctx.Process(target=_run_module, args=(module, argv, stdout.name))
            process.start()
            process.join(timeout)
            if process.exitcode is None:
                process.kill()
                process.join()
                raise subprocess.TimeoutExpired(module, timeout)
            return process.exitcode, stdout.read()
