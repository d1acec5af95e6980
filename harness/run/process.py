"""One worker process as the runner sees it (harness/run/worker.py is the process itself):
its pipe of events read on a thread, its kill, and what its end means."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.results.storage import utc_now
from harness.run.launch import Launcher
from harness.run.worker import WorkerConfig

if TYPE_CHECKING:
    from harness.run.record import RunRecord


def _last_exception_line(log: Path) -> str | None:
    """The `Type: message` line a Python traceback ends with, if the log has one."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.replace(".", "").replace("_", "").isalnum() and head[:1].isupper():
            if head.endswith(("Error", "Exception", "Exit", "Interrupt")):
                return line
    return lines[-1] if lines else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class WorkerProcess:
    """One running worker process: its pipe of events, read on a thread into a shared queue."""

    def __init__(
        self,
        record: RunRecord,
        config: WorkerConfig,
        launcher: Launcher,
        warm: bool,
        log: Path,
        events: Any,
    ) -> None:
        self.record = record
        read_fd, write_fd = os.pipe()
        self.spawn_time = time.time()
        config = replace(config, spawn_time=self.spawn_time)
        with open(log, "wb") as log_file:
            log_file.write(f"# {record.variant} seed {record.seed}, {utc_now()}\n".encode())
        self.process = launcher.start(config, log, write_fd, warm)
        os.close(write_fd)  # the worker holds the only write end: its exit means EOF
        self.timed_out = False
        self.final: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._read, args=(read_fd, events), daemon=True)
        self.thread.start()

    def _read(
        self, fd: int, events: queue.Queue[tuple[WorkerProcess, dict[str, Any] | None]]
    ) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                try:
                    events.put((self, json.loads(line)))
                except ValueError:
                    continue  # a torn line from a killed worker
        events.put((self, None))

    def kill(self) -> None:
        """SIGKILL to the worker's process group: the worker and whatever it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            if self.process.returncode is None:  # a warm worker that has not made its group yet
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)

    def reap(self, timeout: float) -> None:
        """Wait for a worker whose pipe closed. One that hangs on its way out (TensorFlow's
        threads at interpreter exit) is killed after `timeout` seconds."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = self.final is None  # a finished run is still a result
            self.kill()
            self.process.wait()
        # What the variant started and left running ends with its run. While a member of the
        # group lives, the kernel gives no new process the group's id; once none does, this
        # kill finds nothing.
        self.kill()

    @property
    def elapsed(self) -> float:
        return time.time() - self.spawn_time

    def outcome(self, timeout: float, out: Path) -> tuple[str, str | None]:
        """The run's status and error once the process has ended; its log is under `out`."""
        final, code = self.final, self.process.returncode
        if self.timed_out:
            return "timeout", f"no result after {timeout:g} s; killed"
        if final is not None and final["event"] == "done":
            return "ok", None
        if final is not None and final["event"] == "diverged":
            return "diverged", (
                f"loss became {final['loss']} at step {final['step']} (epoch {final['epoch']})"
            )
        if final is not None and final["event"] == "inexpressible":
            return "inexpressible", final.get("error")
        if final is not None:
            return "failed", final.get("error")
        if code < 0:
            name = _signal_name(-code)
            hint = " (out of memory?)" if name == "SIGKILL" else ""
            return "failed", f"killed by signal {name}{hint}"
        line = _last_exception_line(out / (self.record.log or ""))
        if code != 0:
            return "failed", f"exited with status {code}" + (f": {line}" if line else "")
        return "failed", "exited without reporting a result"
