"""Plans a suite of (variant, seed) runs, starts a worker process for each, survives whatever
the workers do, and writes the results folder after every run.

One run at a time by default, so that no run's timing is disturbed by another's; `--jobs N`
trades that for speed and is recorded in the manifest.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import queue
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

import variants
from harness.datasets import Dataset
from harness.measure import environment, loc, roofline
from harness.measure.loc import SourceInfo
from harness.results import scores, storage
from harness.results.storage import utc_now
from harness.run import cluster, device
from harness.run.after_runs import AfterRuns, activity
from harness.run.config import RunConfig, SuiteError, check_resumable
from harness.run.folder import (
    TASKS_PREFIX,
    cap_log,
    check_replaceable,
    clear_results_dir,
    is_empty,
    remove_stale_task_dirs,
)
from harness.run.launch import Launcher, uses_framework
from harness.run.process import WorkerProcess
from harness.run.record import Listener, RunRecord
from harness.run.recorder import Recorder
from harness.run.worker import WorkerConfig
from harness.task import Task, in_dtype, make_task
from variants.base import optimizer_to_dict

# A resumed suite keeps these runs: both are finished measurements (a divergence is the
# outcome of the settings, and would only repeat). Failed, timed-out and pending runs are
# run again, since a crash, an OOM kill or a timeout may be the machine's fault.
KEEP_ON_RESUME = ("ok", "diverged", "inexpressible")
BAND_SEEDS = 3  # runs of the reference that make its seed band, at least
POLL_SECONDS = 0.25  # how often timeouts are checked while waiting for events


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM (which the CLI handles like it) inside the block raise
    KeyboardInterrupt only when it ends. Python runs signal handlers in the main thread, whatever
    thread the kernel gave the signal to, so a handler holds them back; a signal mask would not,
    since it is per thread and the reader and display threads leave it open."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    # one the suite was started with ignored (a shell's background job ignores SIGINT) stays so
    handled = [s for s in HELD_SIGNALS if signal.getsignal(s) != signal.SIG_IGN]
    previous = {s: signal.signal(s, lambda n, _: held.append(n)) for s in handled}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if held:
            # as if it came now: the handler may also decide what later ones do (the CLI's)
            handler = previous[held[0]]
            if callable(handler):
                handler(held[0], None)
            raise KeyboardInterrupt


class Suite:
    """One `mlpbench run`: plan, prepare (tasks, resume), execute, write."""

    def __init__(
        self,
        config: RunConfig,
        dataset: Dataset,
        sources: dict[str, SourceInfo | None],
        listener: Listener,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.sources = sources
        self.listener = listener
        # Seed-major order: every variant of seed 0, then seed 1... so a slow drift in the
        # machine's load spreads over all variants instead of landing on one.
        records = [RunRecord(v, s) for s in config.seeds for v in config.variants]
        shown = {  # what summary.csv shows of each variant's source
            name: {"api_level": s.api_level, "loc": s.loc, "sha256": s.sha256} if s else None
            for name, s in sources.items()
        }
        self.results = Recorder(config, records, shown, listener)
        self.band_seeds: list[int] = []  # seeds only the reference runs (_add_band_runs)
        self.tasks: dict[int, Task] = {}  # they share the dataset's arrays: cheap to keep
        self.tmp: Path | None = None  # where a seed's task is saved for its workers
        self._lock: int | None = None  # storage.lock_folder's, held from prepare to the end
        self._created = False  # --out did not exist before this suite
        self._locked_anew = False  # this suite created --out's lock file
        self._started = False  # execute() has replaced (--force) or begun the folder

    @property
    def records(self) -> list[RunRecord]:
        return self.results.records

    @property
    def manifest(self) -> dict[str, Any]:
        return self.results.manifest

    @manifest.setter
    def manifest(self, value: dict[str, Any]) -> None:
        self.results.manifest = value

    def summary(self) -> pd.DataFrame:
        """One row per run, as summary.csv holds it."""
        return self.results.summary()

    def save(self) -> None:
        self.results.save()

    # -- preparation ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything before the first worker starts; raises SuiteError on bad input."""
        try:
            self._prepare()
        except MemoryError:
            self._cleanup()
            raise SuiteError(
                "out of memory while preparing the tasks; use a smaller --hidden or dataset"
            ) from None
        except BaseException:
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if self._lock is not None:
            if self._locked_anew and not self._started:  # a folder refused is left as it was
                (self.config.out / storage.LOCK).unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None
            out = self.config.out
            if self._created and not self._started and is_empty(out):
                shutil.rmtree(out, ignore_errors=True)  # made for a suite that never started

    def _open_folder(self) -> None:
        """Create --out if needed and hold it: one suite writes a folder at a time."""
        out = self.config.out
        self._created = not out.exists()
        self._locked_anew = not (out / storage.LOCK).exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            self._lock = storage.lock_folder(out)
        except storage.FolderBusy as exc:
            raise SuiteError(str(exc)) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SuiteError(f"--out {out}: cannot write there ({reason})") from None

    def _prepare(self) -> None:
        out = self.config.out
        self._open_folder()
        previous = None
        if self.config.resume and (out / storage.MANIFEST).exists():
            try:
                previous = storage.load_results(out)
            except storage.ResultsError as exc:
                raise SuiteError(f"--resume: {exc}") from None
            check_resumable(self.config, previous.manifest)
        elif self.config.force:
            check_replaceable(out)  # removed only once this suite has started (execute)

        remove_stale_task_dirs()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{TASKS_PREFIX}{os.getpid()}-"))
        self._data = in_dtype(self.dataset, self.config.dtype)  # once: every seed's task shares it
        tasks = {str(seed): self._make_task(seed) for seed in self.config.seeds}

        if previous is not None:
            self._restore(previous, tasks)
        else:
            self.manifest = {
                "schema_version": storage.SCHEMA_VERSION,
                "name": out.name,
                "created": utc_now(),
                "finished": None,
                "command": shlex.join(self.config.argv),
                "argv": list(self.config.argv),
                "config": self.config.to_manifest(),
                "environment": environment.fingerprint(list(self.config.argv)),
                "tasks": tasks,
                "band_seeds": [],
                "calibration": None,
                "runs": [],
                **({"mlp_forms": self._mlp_forms()} if self.config.task != "mlp" else {}),
            }
        self.launcher = Launcher(
            device.worker_env(self.config.device, os.environ),
            out / "logs" / "warm-server.log",
            warm=not self.config.cold_start,
        )

    def _mlp_forms(self) -> dict[str, Any]:
        """The MLP variant of each level this suite runs another task at: its lines of code,
        so that a report can say what the task costs in code over a plain stack."""
        forms = {}
        for name in self.config.variants:
            info = loc.source_info(variants.REGISTRY[name]) if name in variants.REGISTRY else None
            if info is not None:
                forms[name] = {"loc": info.loc, "api_level": info.api_level}
        return forms

    def _make_task(self, seed: int) -> dict[str, Any]:
        """The seed's task, kept for its workers; returns its manifest entry."""
        config = self.config
        task = make_task(
            self._data,
            config.hidden,
            config.epochs,
            seed,
            config.dtype,
            config.task,
            **dict(config.task_options),
        )
        self.tasks[seed] = task
        return {
            "fingerprint": task.fingerprint(),
            "n_train": int(len(task.x_train)),
            "n_test": int(len(task.x_test)),
            "input_size": task.spec.input_size,
            "params": task.spec.param_count,
            "flops_per_sample": roofline.flops_per_sample(task.spec),
        }

    def _restore(self, previous: storage.Results, tasks: dict[str, Any]) -> None:
        for seed in previous.manifest.get("band_seeds") or []:  # as _add_band_runs left them
            tasks[str(seed)] = self._make_task(int(seed))
            self.records.append(RunRecord(variants.REFERENCE, int(seed)))
            self.band_seeds.append(int(seed))
        for seed, info in tasks.items():
            old = previous.manifest.get("tasks", {}).get(seed, {}).get("fingerprint")
            if old != info["fingerprint"]:
                raise SuiteError(
                    f"--resume: the task for seed {seed} differs from the one in "
                    f"{self.config.out} (data changed?); use --force to start over"
                )
        self.manifest = previous.manifest
        self.manifest["config"] = self.config.to_manifest()
        self.manifest["finished"] = None
        self.manifest.setdefault("resumed", []).append(
            {"time": utc_now(), "command": shlex.join(self.config.argv)}
        )
        old_runs = {(r["variant"], int(r["seed"])): r for r in previous.manifest.get("runs", [])}
        for i, record in enumerate(self.records):
            old = old_runs.get(record.key)
            if old is None or old.get("status") not in KEEP_ON_RESUME:
                continue
            self.records[i] = RunRecord(**{k: old.get(k) for k in asdict(record)})
            for frame, store in (
                (previous.steps, self.results.steps),
                (previous.epochs, self.results.epochs),
            ):
                mine = frame[(frame["variant"] == record.variant) & (frame["seed"] == record.seed)]
                store[record.key] = mine.to_dict("records")

    # -- execution -----------------------------------------------------------------------------

    def execute(self) -> int:
        """Run every pending run; return the exit status (0 all ok, 1 any failure or parity
        failure, 130 interrupted)."""
        todo = deque(r for r in self.records if r.status not in KEEP_ON_RESUME)
        self.listener.suite_started(len(self.records), len(self.records) - len(todo))
        if self.config.jobs > 1:
            self.listener.note(
                f"--jobs {self.config.jobs}: runs share the CPU, their timings disturb each other"
            )
        events: queue.Queue[tuple[WorkerProcess, dict[str, Any] | None]] = queue.Queue()
        active: dict[int, WorkerProcess] = {}
        try:
            if self.config.force:
                clear_results_dir(self.config.out)  # the earlier suite, now being replaced
            (self.config.out / "logs").mkdir(exist_ok=True)
            self._started = True
            self._began = time.monotonic()  # --budget counts from here
            self.save()
            if any(self._warm(r.variant) for r in todo):
                # before the first run, so that its start-up overlaps no timed window
                with activity(self.manifest, "warm server start"):
                    self.launcher.start_server()
            self._run(todo, events, active)
            if self._add_band_runs(todo):
                self._run(todo, events, active)
            while self._add_precision_runs(todo):
                self._run(todo, events, active)
            for _ in range(self.config.retry_noisy):
                keys = self.results.noisy_keys()
                noisy = [r for r in self.records if r.key in keys]
                if not noisy:
                    break
                names = ", ".join(f"{r.variant} seed {r.seed}" for r in noisy)
                self.listener.note(f"measuring again what outside load disturbed: {names}")
                todo.extend(noisy)
                self._run(todo, events, active)
            AfterRuns(self.config, self.manifest, self.launcher, self.listener.note).measure()
            self.manifest["finished"] = utc_now()
        except KeyboardInterrupt:
            return 130
        finally:
            # Interrupted (or a bug here): stop what still runs, so no worker outlives the
            # suite, and keep what finished. Their runs go back to pending.
            for w in active.values():
                w.kill()
                w.process.wait()
                self.results.reset(w.record)
            self.save()
            self._cleanup()
        failed = any(r.status not in storage.NOT_FAILED for r in self.records)
        return 1 if failed or self.summary()["learning_pass"].eq(False).any() else 0

    def _run(
        self,
        todo: deque[RunRecord],
        events: queue.Queue[tuple[WorkerProcess, dict[str, Any] | None]],
        active: dict[int, WorkerProcess],
    ) -> None:
        """Start runs from `todo` (up to --jobs at a time) and follow them to their end."""
        while todo or active:
            while todo and len(active) < self.config.jobs:
                # Ctrl-C waits until the new worker is in `active`: one started but not yet
                # held would outlive the suite until its timeout
                with interrupts_held():
                    worker = self._start(todo.popleft(), events)
                    active[id(worker)] = worker
            try:
                worker, event = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                worker, event = None, None
            if worker is not None and event is not None:
                worker.final = self.results.on_event(worker.record, event) or worker.final
            elif worker is not None:  # its pipe closed: the process is gone or going
                worker.reap(max(1.0, self.config.timeout - worker.elapsed))
                cap_log(self.config.out / worker.record.log)
                del active[id(worker)]
                self._finish(worker)
                self._drop_task_file(worker.record.seed, todo, active)
            for w in active.values():
                cap_log(self.config.out / w.record.log)
                if not w.timed_out and w.elapsed > self.config.timeout:
                    w.timed_out = True
                    w.kill()

    def _add_band_runs(self, todo: deque[RunRecord]) -> bool:
        """A run that parted from the reference is judged against the band the reference's
        seeds span (scores.seed_band_gap), which needs BAND_SEEDS of them. With fewer asked
        for, the reference alone runs the next unused seeds, only when a run needs the band."""
        summary = self.summary()
        parted = summary["parity_pass"].eq(False).any()
        ran = summary.loc[summary["variant"].eq(variants.REFERENCE), "seed"].nunique()
        if not parted or ran >= BAND_SEEDS:
            return False
        unused = (s for s in itertools.count() if s not in {r.seed for r in self.records})
        seeds = [next(unused) for _ in range(BAND_SEEDS - ran)]
        self.listener.note(
            f"a run parted from {variants.REFERENCE}: it also runs seeds "
            f"{', '.join(map(str, seeds))} to make its seed band"
        )
        for seed in seeds:
            self.manifest["tasks"][str(seed)] = self._make_task(seed)
            self.band_seeds.append(seed)
            self.records.append(record := RunRecord(variants.REFERENCE, seed))
            todo.append(record)
        self.manifest["band_seeds"] = list(self.band_seeds)
        return True

    def _add_precision_runs(self, todo: deque[RunRecord]) -> bool:
        """--precision: one more process, at the next unused seed, for every variant whose
        throughput interval is still wider than asked (the reference too, with parity, so the
        new runs are checked), while the budget lasts. A process is the unit of replication of
        speed (harness/measure/stats.py): more epochs of the same processes would not narrow it."""
        precision, budget = self.config.precision, self.config.budget
        if precision is None:
            return False
        if budget is not None and time.monotonic() - self._began > budget:
            self.listener.note(f"--budget {budget:g} s spent: no more processes added")
            return False
        _, epochs = self.results.frames()
        widths = scores.throughput_half_widths(epochs, self.summary(), self.manifest)
        wide = [v for v in self.config.variants if widths.get(v, 0.0) > precision]
        if not wide:
            return False
        unused = next(s for s in itertools.count() if s not in {r.seed for r in self.records})
        if self.config.parity and variants.REFERENCE not in wide:
            wide.insert(0, variants.REFERENCE)
        shown = ", ".join(
            f"{v} (+-{widths[v]:.0%})" if math.isfinite(widths.get(v, math.inf)) else v
            for v in wide
        )
        self.listener.note(f"--precision {precision:g}: seed {unused} for {shown}")
        self.manifest["tasks"][str(unused)] = self._make_task(unused)
        self.manifest.setdefault("precision_seeds", []).append(unused)
        for name in wide:
            self.records.append(record := RunRecord(name, unused))
            todo.append(record)
        return True

    def _warm(self, variant: str) -> bool:
        source = self.sources.get(variant)
        return source is not None and uses_framework(source.imports)

    def _start(self, record: RunRecord, events: queue.Queue[Any]) -> WorkerProcess:
        attempts = record.attempts or 0
        self.results.reset(record)
        record.attempts = attempts + 1
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in record.variant)
        log = self.config.out / "logs" / f"{safe}-seed{record.seed}.log"
        record.log = str(log.relative_to(self.config.out))
        record.started = utc_now()
        self.results.start(record)
        config = WorkerConfig(
            task_path=str(self._task_file(record.seed)),
            variant=record.variant,
            variant_path=self.config.path_of(record.variant),
            optimizer=optimizer_to_dict(self.config.optimizer),
            batch_size=self.config.batch_size,
            epochs=self.config.epochs,
            device=self.config.device,
            workers=self.config.workers,
            mode=self.config.mode,
            ablate=self.config.ablate,
            thread_affinity=self.config.thread_affinity,
        )
        self.listener.run_started(record)
        warm = self._warm(record.variant)
        launcher: Any = self.launcher
        if self.config.workers > 1 and cluster.layout(config.variant_path) == "ranks":
            # N processes with their supervisor: one worker process to this runner
            launcher = cluster.ClusterLauncher(
                self.launcher.env, self.config.workers, self.config.timeout, self.launcher
            )
        return WorkerProcess(record, config, launcher, warm, log, events)

    def _task_file(self, seed: int) -> Path:
        """The seed's task on disk, saved when its first run starts and deleted after its last
        (`_drop_task_file`): one MNIST task is ~200 MB, so seeds do not pile up."""
        assert self.tmp is not None, "prepare() first"
        path = self.tmp / f"seed{seed}.npz"
        if not path.exists():
            self.tasks[seed].save(path)
        return path

    def _drop_task_file(
        self, seed: int, todo: deque[RunRecord], active: dict[int, WorkerProcess]
    ) -> None:
        still_needed = [r for r in todo if r.seed == seed]
        still_needed += [w.record for w in active.values() if w.record.seed == seed]
        if self.tmp is not None and not still_needed:
            (self.tmp / f"seed{seed}.npz").unlink(missing_ok=True)

    def _finish(self, worker: WorkerProcess) -> None:
        record, final = worker.record, worker.final
        record.wall_seconds = round(worker.elapsed, 3)
        record.status, record.error = worker.outcome(self.config.timeout, self.config.out)
        if record.status == "ok" and final is not None:
            record.task_fingerprint = final.get("task_fingerprint")
            expected = self.manifest["tasks"][str(record.seed)]["fingerprint"]
            if record.task_fingerprint != expected:
                record.status = "failed"
                record.error = "the variant changed the arrays of the task it was given"
            elif len(self.results.epochs[record.key]) != self.config.epochs:
                record.status = "failed"
                done = len(self.results.epochs[record.key])
                record.error = f"reported {done} epochs, not {self.config.epochs}"
        self.save()
        row = next(r for r in self.summary().to_dict("records") if r["variant"] == record.variant
                   and r["seed"] == record.seed)  # fmt: skip
        self.listener.run_finished(record, row)
