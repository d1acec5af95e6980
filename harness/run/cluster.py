"""Runs one (variant, seed) as a cluster of N worker processes on this machine's loopback.

Every rank runs the same worker code (harness/run/worker.py) with its own TF_CONFIG; the variant's
strategy reads TF_CONFIG and connects the ranks. A supervisor process stands between the runner
and the ranks, so that to the runner a distributed run is one process with one event stream:

    runner --(pipe: the chief's events)-- supervisor --+-- rank 0 (chief) --+
                                                       +-- rank 1 ... ------+-- gRPC, 127.0.0.1

Ranks start cold (each a fresh interpreter: `python -m harness.run.cluster rank`, paying
TensorFlow's import itself) or forked (`--fork`): the supervisor, itself forked from the runner's
warm server (harness/run/launch.py) or having imported the frameworks once (harness/run/preload.py),
forks every rank from its own memory. Importing creates none of TensorFlow's runtime (no context,
device, thread pool or server): that starts in each rank, so a forked rank is a fresh
TensorFlow process that skipped the import, whose time it adds back like any warm run.

The supervisor
- chooses free loopback ports and starts again on new ones when a rank cannot bind its port
  ("Could not start gRPC server": another process took it between choice and bind);
- starts each rank in a process group of its own that dies with the supervisor (PDEATHSIG), so
  the runner's kill of the supervisor (a timeout) also ends every rank;
- gives the whole start-up one deadline (every rank reports `start` once its strategy is up;
  a peer that never starts would otherwise block the others for ever);
- kills every rank as soon as one fails, after a watchdog dump of every live rank's Python
  stacks into its log (faulthandler on SIGUSR1), and reports the first failure as the reason;
- forwards the chief's events as they come, and its final event only when every rank is done.

The collective timeout of each step is the variant's (`CommunicationOptions(timeout_seconds)`):
a frozen peer fails the step on the others, which then fail here like any rank.

    python -m harness.run.cluster supervise --workers N --logs PREFIX [--fork] [...] '<Config>'
    python -m harness.run.cluster rank '<WorkerConfig>'     (a cold rank: what `supervise` starts)
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import faulthandler
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.measure import noise
from harness.run import lifetime
from harness.run.worker import Events, WorkerConfig

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from harness.run.launch import Launcher, WarmProcess

PORT_ATTEMPTS = 3  # a port taken between choice and bind is rare: three draws are plenty
STARTUP_SECONDS = 90.0  # TensorFlow's import in every rank at once, on a busy machine
STACK_DUMP_SECONDS = 1.0  # for faulthandler to write every rank's stacks before the kill
ROOT_CAUSE_GRACE_SECONDS = 0.5  # for the other ranks to report after the first failure
EXIT_GRACE_SECONDS = 10.0  # for a rank whose event stream ended to exit
WAIT_POLL_SECONDS = 0.005  # how often a forked rank's exit (or the chief's port) is looked for
CHIEF_LISTEN_SECONDS = 10.0  # at most, for the chief's server before its peers are forked
PORT_TAKEN = ("Could not start gRPC server", "Address already in use")
_PR_SET_PDEATHSIG = 1
TF_STACK_FRAME = r' File "[^"]*", line \d+, in \S+'  # as one line in a TensorFlow error


def free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 now. They are released before the ranks bind them,
    so another process may still take one: the supervisor then starts again."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def listening(port: int) -> bool:
    """Whether a socket of this machine listens on TCP `port`: read from /proc/net, so that no
    connection is made to it."""
    suffix = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows, None)  # the header
            for row in rows:
                local, state = row.split()[1:4:2]  # local address, state (0A: LISTEN)
                if state == "0A" and local.endswith(suffix):
                    return True
    return False


def tf_config(ports: list[int], rank: int) -> str:
    """The TF_CONFIG of `rank` in a cluster of workers on loopback; rank 0 is the chief."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": rank}})


# -- which variants run as a cluster --------------------------------------------------------------


def _class_attributes(tree: ast.Module, class_name: str) -> dict[str, Any]:
    """Constant class attributes of `class_name`, its bases in the same module included."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    found: dict[str, Any] = {}
    node = classes.get(class_name)
    while node is not None:
        for stmt in node.body:
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
            value = getattr(stmt, "value", None)
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                found.setdefault(target.id, value.value)
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        node = classes.get(bases[0]) if bases else None
    return found


def layout(variant_path: str) -> str:
    """How `--workers N` runs the class at "module:Class", read from its source (never
    imported here, so the runner does not import TensorFlow):
    "ranks": N processes (`distributed = True`); "one_process": one process holding N
    replicas (`distributed = True` and `in_one_process = True`); "single": not distributed."""
    module, _, class_name = variant_path.partition(":")
    try:
        spec = find_spec(module)
        origin = spec.origin if spec else None
        attrs = _class_attributes(ast.parse(Path(origin).read_text()), class_name) if origin else {}
    except (ImportError, OSError, SyntaxError, ValueError):
        attrs = {}
    if attrs.get("distributed") is not True:
        return "single"
    return "one_process" if attrs.get("in_one_process") is True else "ranks"


# -- the runner's side ------------------------------------------------------------------------


class ClusterLauncher:
    """Starts the supervisor of one distributed run, behind `harness.run.launch.Launcher.start`'s
    signature; the runner treats it as one worker process (its own process group).

    Warm (the runner's `launcher` has its fork server on): the supervisor is forked from that
    server and forks its ranks (`--fork`). Cold: a fresh interpreter whose ranks are fresh
    interpreters too."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int,
        deadline: float,
        launcher: Launcher | None = None,
    ) -> None:
        self.env = env
        self.workers = workers
        self.deadline = deadline
        self.launcher = launcher

    def start(
        self, config: WorkerConfig, log: Path, write_fd: int, warm: bool = False
    ) -> subprocess.Popen[bytes] | WarmProcess:
        # the supervisor's own deadline comes first, so that it dumps stacks before the
        # runner's timeout kills it (and with it every rank)
        argv = ["--workers", str(self.workers), "--logs", str(log.with_suffix(""))]
        argv += ["--deadline", f"{max(1.0, self.deadline - 5 * STACK_DUMP_SECONDS):g}"]
        config = replace(config, workers=self.workers)
        if warm and self.launcher is not None and self.launcher.warm:
            return self.launcher.fork(_warm_supervise, (argv, config), write_fd, log)
        from harness.run.launch import spawn

        config = replace(config, event_fd=write_fd)
        argv = ["-m", "harness.run.cluster", "supervise", *argv, config.to_json()]
        return spawn(argv, write_fd, log, self.env)


def _warm_supervise(job: tuple[list[str], WorkerConfig], events: Connection, log: str) -> None:
    """The supervisor, in a child of the runner's warm server: it forks its ranks."""
    from harness.run.launch import become_run

    argv, config = job
    config = replace(config, event_fd=become_run(events, log))
    sys.exit(supervise([*argv, "--fork", config.to_json()]))


# -- the supervisor ---------------------------------------------------------------------------


class ForkedRank:
    """A rank forked from the supervisor, behind the part of `subprocess.Popen` used here."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None and self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        end = time.monotonic() + (timeout or 0.0)
        while (code := self.poll()) is None:
            if time.monotonic() >= end:
                raise subprocess.TimeoutExpired(f"rank pid {self.pid}", timeout or 0.0)
            time.sleep(WAIT_POLL_SECONDS)
        return code


@dataclass
class Rank:
    index: int
    process: subprocess.Popen[bytes] | ForkedRank
    fd: int  # read end of its event pipe
    log: Path
    buffer: bytes = b""
    started: bool = False
    final: dict[str, Any] | None = None
    closed: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)


class ClusterFailed(Exception):
    """The run failed; the message is the reason the results show."""


class Diverged(Exception):
    """A rank's loss became NaN or inf: every rank trains the same numbers, so the run's outcome
    is that divergence (the event is the exception's argument)."""


class PortTaken(Exception):
    """A rank could not bind its port: start again on other ports."""


def _die_with_parent() -> None:
    """In the rank, before exec: its own session, and SIGKILL when the supervisor dies."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with status {code}"


def _log_tail(log: Path, lines: int = 200) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Supervisor:
    def __init__(
        self,
        config: WorkerConfig | None,
        workers: int,
        logs: str,
        deadline: float,
        startup: float,
        ports: list[int] | None = None,
        rank_command: Callable[[int], list[str]] | None = None,
        fork: bool = False,
        rank_main: Callable[[int], int] | None = None,
        private_fds: tuple[int, ...] = (),
    ) -> None:
        self.config = config
        # A cold rank: `python -X faulthandler ARGS`, given its event pipe; by default the worker
        self.rank_command = rank_command or self.worker_rank
        # A forked rank (`fork`) runs `rank_main(event_fd)` and exits with its status; by default
        # the worker. This process must have imported what the ranks need and have started none
        # of TensorFlow's runtime (harness/run/preload.py), nor any thread.
        self.fork = fork
        self.rank_main = rank_main or self.worker_main
        self.private_fds = private_fds  # the supervisor's own: a forked rank closes them
        self.workers = workers
        self.logs = logs
        self.deadline = deadline
        self.startup = startup
        self.ports = ports
        self.ranks: list[Rank] = []
        self.began = time.monotonic()

    def start_ranks(self, attempt: int) -> None:
        ports = self.ports if attempt == 1 and self.ports else free_ports(self.workers)
        # the ranks count each other's CPU as their run's own, not outside load (noise.py)
        peers = Path(f"{self.logs}.pids")
        peers.unlink(missing_ok=True)
        os.environ[noise.PEERS_FILE] = str(peers)
        how = "forked" if self.fork else "cold"
        self._note(f"attempt {attempt}: {how} ranks on 127.0.0.1 ports {ports}")
        for index in range(self.workers):
            read_fd, write_fd = os.pipe()
            log = Path(f"{self.logs}.rank{index}.log")
            config = tf_config(ports, index)
            with open(log, "ab") as out:
                out.write(f"# rank {index} of {self.workers}, attempt {attempt}\n".encode())
            if self.fork:
                process: subprocess.Popen[bytes] | ForkedRank = self._fork_rank(
                    config, read_fd, write_fd, log
                )
            else:
                cmd = [sys.executable, "-X", "faulthandler", *self.rank_command(write_fd)]
                with open(log, "ab") as out:
                    process = subprocess.Popen(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        pass_fds=(write_fd,),
                        env=dict(os.environ, TF_CONFIG=config),
                        preexec_fn=_die_with_parent,  # safe: the supervisor has one thread
                    )
            os.close(write_fd)
            self.ranks.append(Rank(index, process, read_fd, log))
            self._note(f"rank {index}: pid {process.pid}, log {log.name}")
            if self.fork and index == 0 and self.workers > 1:
                self._await_chief(ports[0], process)
        pids = "".join(f"{pid}\n" for pid in (os.getpid(), *(r.process.pid for r in self.ranks)))
        tmp = peers.with_suffix(".tmp")
        tmp.write_text(pids)
        tmp.replace(peers)  # whole or absent to a rank reading it

    def _await_chief(self, port: int, chief: ForkedRank | subprocess.Popen[bytes]) -> None:
        """Forked ranks reach their strategy within milliseconds of each other, and a peer that
        dials the chief's coordination service before it listens waits out gRPC's reconnect
        backoff (1 s). So the peers are forked once the chief listens, or has exited, or after
        CHIEF_LISTEN_SECONDS; the start-up deadline still holds. (Cold ranks start together:
        their imports, seconds long, are better made at once.)"""
        end = time.monotonic() + CHIEF_LISTEN_SECONDS
        while not listening(port):
            if chief.poll() is not None or time.monotonic() > end:
                return
            time.sleep(WAIT_POLL_SECONDS)
        self._note(f"rank 0 listens on port {port}")

    def _fork_rank(self, config: str, read_fd: int, write_fd: int, log: Path) -> ForkedRank:
        """Fork one rank; the child never returns from here."""
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid:
            return ForkedRank(pid)
        code = 1
        try:
            _die_with_parent()
            if os.getppid() != parent:  # the supervisor died before PDEATHSIG was armed
                os._exit(1)
            # what only the supervisor may hold: its event stream to the runner (which would
            # not see it end while a rank lived) and the read ends of the ranks' pipes
            for fd in (*self.private_fds, read_fd, *(r.fd for r in self.ranks)):
                with contextlib.suppress(OSError):
                    os.close(fd)
            out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
            os.close(null)
            # Python's streams on the log too, whatever the supervisor had made of its own
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh interpreter
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.environ["TF_CONFIG"] = config
            faulthandler.enable(file=2)
            faulthandler.register(signal.SIGUSR1, file=2, all_threads=True)  # the watchdog's dump
            code = self.rank_main(write_fd)
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:
            traceback.print_exc()
        finally:
            # no interpreter shutdown: the supervisor's state is not the rank's to clean up
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def worker_rank(self, event_fd: int) -> list[str]:
        config = replace(self.config, event_fd=event_fd)
        return ["-m", "harness.run.cluster", "rank", config.to_json()]

    def worker_main(self, event_fd: int) -> int:
        """A forked rank: the plain worker."""
        from harness.run import worker

        return worker.main([replace(self.config, event_fd=event_fd).to_json()])

    def _note(self, message: str) -> None:
        """A line of the supervisor's log, stamped with the seconds since it began."""
        print(f"# {message}  [{self._elapsed():.2f} s]", flush=True)

    def watch(self, out: Events) -> dict[str, Any]:
        """Until every rank is done (the chief's final event) or one fails (ClusterFailed)."""
        selector = selectors.DefaultSelector()
        for rank in self.ranks:
            selector.register(rank.fd, selectors.EVENT_READ, rank)
        try:
            while not all(r.closed for r in self.ranks):
                self._check_clock()
                for key, _ in selector.select(timeout=0.2):
                    rank = key.data
                    chunk = os.read(rank.fd, 65536)
                    if chunk:
                        self._on_bytes(rank, chunk, out)
                    else:
                        selector.unregister(rank.fd)
                        os.close(rank.fd)
                        rank.closed = True
                        self._on_exit(rank)
        finally:
            selector.close()
        chief = self.ranks[0].final
        assert chief is not None
        return chief

    def _check_clock(self) -> None:
        elapsed = time.monotonic() - self.began
        if elapsed > self.deadline:
            raise ClusterFailed(f"no result after {self.deadline:g} s (stacks in the rank logs)")
        waiting = [r.index for r in self.ranks if not r.started]
        if waiting and elapsed > self.startup:
            raise ClusterFailed(
                f"the cluster did not start within {self.startup:g} s: rank(s) "
                f"{', '.join(map(str, waiting))} never connected (stacks in the rank logs)"
            )

    def _on_bytes(self, rank: Rank, chunk: bytes, out: Events) -> None:
        rank.buffer += chunk
        *lines, rank.buffer = rank.buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "start":
                rank.started = True
                self._note(f"rank {rank.index}: started (its strategy is up)")
            if kind in ("done", "diverged", "error"):
                rank.final = event
                self._note(f"rank {rank.index}: {kind}")
                if not rank.started and any(t in str(event.get("error")) for t in PORT_TAKEN):
                    raise PortTaken(f"rank {rank.index} could not bind its port")
                if kind == "diverged":
                    raise Diverged(event)
                if kind != "done":
                    raise ClusterFailed(self._rank_reason(rank, event))
            elif rank.index == 0:
                out.emit(event.pop("event"), **event)  # progress, live

    def _on_exit(self, rank: Rank) -> None:
        try:
            code = rank.process.wait(timeout=EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            # its pipe closed, the process hangs on its way out (TensorFlow's threads at exit)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rank.process.pid, signal.SIGKILL)
            rank.process.wait()
            self._note(f"rank {rank.index} hung on exit; killed")
            code = 0 if rank.final is not None and rank.final["event"] == "done" else None
        self._note(f"rank {rank.index}: {_describe_exit(code)}")
        if rank.final is None or code != 0:
            if not rank.started and any(s in _log_tail(rank.log) for s in PORT_TAKEN):
                raise PortTaken(f"rank {rank.index} could not bind its port")
            raise ClusterFailed(self._rank_reason(rank, rank.final, code))

    def _rank_reason(
        self, rank: Rank, final: dict[str, Any] | None, code: int | None = None
    ) -> str:
        who = f"rank {rank.index} of {self.workers} (pid {rank.process.pid})"
        if final is not None and final.get("event") == "diverged":
            return f"{who}: loss became {final.get('loss')} at step {final.get('step')}"
        if final is not None and final.get("error"):
            # TensorFlow puts the Python stack of the failing op in its message: it is in the log
            return f"{who}: {re.sub(TF_STACK_FRAME, '', final['error'])}"
        return f"{who} {_describe_exit(code)} without a result; see {rank.log.name}"

    def _elapsed(self) -> float:
        return time.monotonic() - self.began

    def root_cause(self, first: str) -> str:
        """A killed rank makes its peers fail a moment later ("Collective ops is aborted"), and
        either may be seen first: after a short grace, a rank that died without a result is
        the cause."""
        time.sleep(ROOT_CAUSE_GRACE_SECONDS)
        for r in self.ranks:
            code = r.process.poll()
            if code is not None and code < 0 and r.final is None:
                cause = self._rank_reason(r, None, code)
                return cause if cause == first else f"{cause} (then: {first})"
        return first

    def stop(self, dump_stacks: bool) -> None:
        """Every rank: its stacks into its log if asked, then SIGKILL to its group; reaped."""
        live = [r for r in self.ranks if r.process.poll() is None]
        if dump_stacks and live:
            for r in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(r.process.pid, signal.SIGUSR1)
            time.sleep(STACK_DUMP_SECONDS)
        for r in self.ranks:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.process.pid, signal.SIGKILL)
            r.process.wait()
            if not r.closed:
                os.close(r.fd)
                r.closed = True
        self.ranks = []

    def run(self, out: Events) -> int:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.start_ranks(attempt)
            try:
                final = self.watch(out)
            except PortTaken as exc:
                self._note(f"{exc}; starting again on other ports")
                self.stop(dump_stacks=False)
                if self._elapsed() > self.startup:
                    break
                continue
            except Diverged as exc:
                (event,) = exc.args
                self.stop(dump_stacks=False)
                kind = event.pop("event")
                out.emit(kind, **{"workers": self.workers, **event})
                return 3
            except ClusterFailed as exc:
                reason = self.root_cause(str(exc))
                self._note(f"failed: {reason}")
                self.stop(dump_stacks=True)
                out.emit("error", error=reason, peak_rss_mb=None, tensorflow=None)
                return 1
            except BaseException:
                self.stop(dump_stacks=False)
                raise
            self.stop(dump_stacks=False)
            kind = final.pop("event")
            out.emit(kind, **{"workers": self.workers, **final})
            return 0
        reason = f"no free loopback ports after {PORT_ATTEMPTS} attempts (each was taken)"
        out.emit("error", error=reason, peak_rss_mb=None, tensorflow=None)
        return 1


def _stop_on_signals() -> None:
    """SIGTERM / SIGINT end the supervisor through its `finally`: ranks are killed, not orphaned."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def supervise(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run.cluster supervise")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--logs", required=True, help="rank i logs to PREFIX.rank<i>.log")
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--startup", type=float, default=STARTUP_SECONDS)
    parser.add_argument("--ports", help="P0,P1,...: the first attempt's ports (default: free ones)")
    parser.add_argument(
        "--fork",
        action="store_true",
        help="fork the ranks from this process, which imports the frameworks once (if it has "
        "not: a child of the warm server has), instead of starting fresh interpreters",
    )
    parser.add_argument("config")
    args = parser.parse_args(argv)
    ports = [int(p) for p in args.ports.split(",")] if args.ports else None
    config = WorkerConfig.from_json(args.config)
    lifetime.die_with_parent(config.event_fd)  # and its ranks die with it (_die_with_parent)
    _stop_on_signals()
    if args.fork:
        import harness.run.preload  # noqa: F401  (imports only: no runtime, no thread of TensorFlow's)
    supervisor = Supervisor(
        config,
        args.workers,
        args.logs,
        args.deadline,
        args.startup,
        ports=ports,
        fork=args.fork,
        private_fds=() if config.event_fd is None else (config.event_fd,),
    )
    stream = os.fdopen(config.event_fd, "w") if config.event_fd is not None else sys.stdout
    with stream:
        return supervisor.run(Events(stream))


def rank(argv: list[str]) -> int:
    """One rank: the plain worker, which dumps its stacks on SIGUSR1 for the watchdog."""
    from harness.run import worker

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    return worker.main(argv)


def main(argv: list[str]) -> int:
    commands = {"supervise": supervise, "rank": rank}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
